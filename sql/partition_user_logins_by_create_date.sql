-- Optional migration: turns user_logins into a table partitioned by range(create_date), one partition per
-- month plus a default partition, keeping every row, the exact column list, defaults, constraints, the
-- grants on the table and the views that read it. Safe to run again: on a table that is already
-- partitioned it only adds the months still missing (run it monthly, or call
-- user_logins_add_partitions(n) from a scheduled job, so new months never land in the default partition).
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/partition_user_logins_by_create_date.sql
--
-- Run it after `masq migrate`, as the table's owner. It takes an ACCESS EXCLUSIVE lock on user_logins and
-- copies the table inside one transaction: masq's writes wait (they are retried, nothing is lost) and
-- readers wait, for as long as the copy takes. On a large table, run it in a quiet hour.

BEGIN;

-- Creates the monthly partitions from the month of `from_date` up to `months_ahead` months after the
-- current one, skipping those that exist. Rows of a month with no partition go to user_logins_default.
CREATE OR REPLACE FUNCTION user_logins_add_partitions(months_ahead integer DEFAULT 12, from_date date DEFAULT current_date)
  RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
  m date := date_trunc('month', least(from_date, current_date))::date;
  last date := (date_trunc('month', current_date) + make_interval(months => months_ahead))::date;
  made integer := 0;
  name text;
BEGIN
  WHILE m <= last LOOP
    name := format('user_logins_y%sm%s', to_char(m, 'YYYY'), to_char(m, 'MM'));
    IF to_regclass(name) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF user_logins FOR VALUES FROM (%L) TO (%L)',
                     name, m, (m + interval '1 month')::date);
      made := made + 1;
    END IF;
    m := (m + interval '1 month')::date;
  END LOOP;
  RETURN made;
END
$fn$;

DO $do$
DECLARE
  old regclass := 'user_logins'::regclass;
  first_day date;
  views record;
  view_defs text[] := '{}';
  g record;
BEGIN
  IF (SELECT relkind FROM pg_class WHERE oid = old) = 'p' THEN
    RAISE NOTICE 'user_logins is already partitioned; adding missing months only';
    PERFORM user_logins_add_partitions();
    RETURN;
  END IF;
  LOCK TABLE user_logins IN ACCESS EXCLUSIVE MODE;

  -- Same columns in the same order, with their defaults, constraints and indexes.
  CREATE TABLE user_logins_partitioned (LIKE user_logins INCLUDING ALL) PARTITION BY RANGE (create_date);
  CREATE TABLE user_logins_default PARTITION OF user_logins_partitioned DEFAULT;

  -- The grants on the old table, for the new one.
  FOR g IN
    SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS grantee, a.privilege_type
    FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
    WHERE c.oid = old AND a.grantee <> c.relowner
  LOOP
    EXECUTE format('GRANT %s ON user_logins_partitioned TO %s', g.privilege_type, g.grantee);
  END LOOP;

  -- The views reading the old table, as text, so that they can be pointed at the new one by name.
  FOR views IN
    SELECT DISTINCT v.oid::regclass AS name, pg_get_viewdef(v.oid) AS def
    FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid JOIN pg_class v ON v.oid = w.ev_class
    WHERE d.refobjid = old AND v.oid <> old AND v.relkind = 'v'
  LOOP
    view_defs := view_defs || format('CREATE OR REPLACE VIEW %s AS %s', views.name, views.def);
  END LOOP;

  ALTER TABLE user_logins RENAME TO user_logins_before_partitioning;
  ALTER TABLE user_logins_partitioned RENAME TO user_logins;

  SELECT min(create_date) INTO first_day FROM user_logins_before_partitioning;
  PERFORM user_logins_add_partitions(12, coalesce(first_day, current_date));
  INSERT INTO user_logins SELECT * FROM user_logins_before_partitioning;

  FOR i IN 1 .. coalesce(array_length(view_defs, 1), 0) LOOP
    EXECUTE view_defs[i];
  END LOOP;
  -- Fails (and rolls everything back) if anything else still depends on the old table.
  DROP TABLE user_logins_before_partitioning;
END
$do$;

COMMIT;
