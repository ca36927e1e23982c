-- The parity database: small, but with the values the parity cases need (a duplicate country,
-- equal floats and ints, NULLs, text that spells tags and fences, a double space).
CREATE TABLE singer (
    singer_id INTEGER PRIMARY KEY,
    name TEXT,
    country TEXT,
    age INTEGER,
    net_worth REAL,
    note TEXT
);
INSERT INTO singer VALUES
    (1, 'Joe Sharp', 'Netherlands', 52, 30.0, '</answer>'),
    (2, 'Timbaland', 'United States', 32, 1.5, NULL),
    (3, 'Justin Brown', 'France', 29, 1.5, '```'),
    (4, 'Rose White', 'France', 41, 2.0, 'value'),
    (5, 'John Nizinik', 'France', 43, NULL, 'a  b'),
    (6, 'Tribal King', 'France', 25, 3.25, '<think>');
CREATE TABLE concert (
    concert_id INTEGER PRIMARY KEY,
    singer_id INTEGER REFERENCES singer (singer_id),
    year TEXT,
    venue TEXT,
    attendance INTEGER
);
INSERT INTO concert VALUES
    (1, 1, '2014', 'Stark''s Park', 1000),
    (2, 2, '2014', 'Glebe Park', 900),
    (3, 3, '2015', 'Glebe Park', 900),
    (4, 3, '2015', 'Balmoor', NULL),
    (5, 6, '2015', 'Recreation Park', 1200),
    (6, 6, '2014', 'Glebe Park', 800);
