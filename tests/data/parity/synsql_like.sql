-- A database in SynSQL-2.5M's style: CREATE TABLE text with /* … */ column descriptions.
CREATE TABLE "regions" (
  "region_id" INTEGER /* Unique identifier for each region */,
  "region_name" TEXT /* Name of the region (e.g., Northeastern, Southern) */,
  "population" INTEGER /* Population of the region */,
  PRIMARY KEY ("region_id")
);
CREATE TABLE "universities" (
  "university_id" INTEGER /* Unique identifier for each university */,
  "name" TEXT /* Name of the university */,
  "region_id" INTEGER /* Reference to the region where the university is located */,
  "website_url" TEXT /* URL of the university's website */,
  PRIMARY KEY ("university_id"), 
  CONSTRAINT fk_universities_region_id FOREIGN KEY ("region_id") REFERENCES regions ("region_id")
);
INSERT INTO regions VALUES (1, 'Northeastern', 1000), (2, 'Southern', 2000);
INSERT INTO universities VALUES (1, 'Harbor College', 1, 'https://harbor.example'), (2, 'Delta State', 2, NULL);
