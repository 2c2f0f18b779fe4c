-- Sample data for the city example's Postgres output ports. The data stays in
-- each domain's own database; the control plane only grants access to it.
-- Idempotent: run it as the admin user of the URL in ../30-port-secrets.yaml,
--   psql "$DATAMESH_PG_URL" -v ON_ERROR_STOP=1 -f examples/city/sql/seed.sql
-- Every value is invented.

SET client_min_messages = warning;

CREATE SCHEMA IF NOT EXISTS transport;
CREATE SCHEMA IF NOT EXISTS environment;
CREATE SCHEMA IF NOT EXISTS finance;
CREATE SCHEMA IF NOT EXISTS social_care;

CREATE TABLE IF NOT EXISTS transport.bus_punctuality (
  service_date        date        NOT NULL,
  operator_code       text        NOT NULL,
  route_id            text        NOT NULL,
  stop_id             text        NOT NULL,
  scheduled_departure timestamptz NOT NULL,
  actual_departure    timestamptz,
  delay_seconds       integer,
  on_time             boolean,
  ward_code           text
);
TRUNCATE transport.bus_punctuality;
INSERT INTO transport.bus_punctuality VALUES
  ('2026-11-24', 'NXB', '42', '450012345', '2026-11-24 07:30:00Z', '2026-11-24 07:31:10Z',   70, true,  'E05012001'),
  ('2026-11-24', 'NXB', '42', '450012346', '2026-11-24 07:38:00Z', '2026-11-24 07:45:20Z',  440, false, 'E05012002'),
  ('2026-11-24', 'FNB', '7',  '450019001', '2026-11-24 08:05:00Z', '2026-11-24 08:04:30Z',  -30, true,  'E05012003'),
  ('2026-11-24', 'FNB', '7',  '450019002', '2026-11-24 08:12:00Z', '2026-11-24 08:16:00Z',  240, true,  'E05012003');

CREATE TABLE IF NOT EXISTS environment.air_quality_readings (
  sensor_id          text        NOT NULL,
  site_type          text        NOT NULL,
  latitude           numeric,
  longitude          numeric,
  ward_code          text,
  measured_at        timestamptz NOT NULL,
  pollutant          text        NOT NULL,
  concentration_ugm3 numeric,
  ratified           boolean     NOT NULL DEFAULT false
);
TRUNCATE environment.air_quality_readings;
INSERT INTO environment.air_quality_readings VALUES
  ('REF-01', 'reference', 53.4801, -2.2426, 'E05012001', '2026-11-24 08:00:00Z', 'no2',  48.2, false),
  ('REF-01', 'reference', 53.4801, -2.2426, 'E05012001', '2026-11-24 08:00:00Z', 'pm25', 11.4, false),
  ('LC-031', 'low-cost',  53.4862, -2.2301, 'E05012002', '2026-11-24 08:00:00Z', 'no2',  61.0, false),
  ('LC-044', 'low-cost',  53.4750, -2.2510, 'E05012003', '2026-11-24 08:00:00Z', 'pm10', 19.8, false);

CREATE TABLE IF NOT EXISTS environment.congestion_air_quality_by_ward (
  ward_code              text    NOT NULL,
  ward_name              text    NOT NULL,
  week_start             date    NOT NULL,
  mean_bus_delay_seconds numeric,
  congestion_index       numeric,
  mean_no2_ugm3          numeric,
  mean_pm25_ugm3         numeric,
  no2_exceedance_hours   integer
);
TRUNCATE environment.congestion_air_quality_by_ward;
INSERT INTO environment.congestion_air_quality_by_ward VALUES
  ('E05012001', 'City Centre', '2026-11-16',  95.0, 1.18, 44.1, 10.9, 0),
  ('E05012002', 'Eastgate',    '2026-11-16', 210.0, 1.42, 57.3, 12.6, 2),
  ('E05012003', 'Riverside',   '2026-11-16',  60.0, 0.97, 31.8,  9.1, 0);

CREATE TABLE IF NOT EXISTS finance.business_rates (
  property_reference    text    NOT NULL,
  address               text    NOT NULL,
  postcode              text,
  ward_code             text,
  scat_code             text,
  rateable_value        integer,
  small_business_relief boolean,
  empty_property        boolean,
  rates_payable         numeric
);
TRUNCATE finance.business_rates;
INSERT INTO finance.business_rates VALUES
  ('NB00012345', '12 Market Street, Northbridge', 'NB1 1AA', 'E05012001', '249', 18500, false, false,  9231.50),
  ('NB00012346', 'Unit 4, Eastgate Retail Park',  'NB2 4QT', 'E05012002', '203', 64000, false, true,  34560.00),
  ('NB00012347', '3 Riverside Walk, Northbridge', 'NB3 9ZZ', 'E05012003', '249',  9800, true,  false,     0.00);

CREATE TABLE IF NOT EXISTS social_care.case_records (
  case_id                text NOT NULL,
  nhs_number             text,
  full_name              text,
  date_of_birth          date,
  postcode               text,
  person_key             text NOT NULL,
  age_band               text,
  ward_code              text,
  referral_date          date,
  primary_support_reason text,
  service_type           text,
  case_status            text
);
TRUNCATE social_care.case_records;
INSERT INTO social_care.case_records VALUES
  ('ASC-2026-0001', '9990000018', 'Test Person One',   '1946-03-02', 'NB2 4AB', 'pk_7f3a9c', '80-84', 'E05012002', '2026-02-11', 'physical support',        'home care',         'open'),
  ('ASC-2026-0002', '9990000026', 'Test Person Two',   '1952-11-19', 'NB1 2CD', 'pk_1b22e0', '70-74', 'E05012001', '2026-05-03', 'mental health support',   'direct payment',    'open'),
  ('ASC-2025-0417', '9990000034', 'Test Person Three', '1938-07-30', 'NB3 5EF', 'pk_c0d4e8', '85-89', 'E05012003', '2025-09-21', 'physical support',        'residential care',  'closed');
