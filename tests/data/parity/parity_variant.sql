-- A second test-suite database for parity_ts (run after parity.sql): same schema, other ages, so a
-- prediction that only matches the first database by accident fails the test suite.
UPDATE singer SET age = age + 10 WHERE singer_id IN (2, 4);
