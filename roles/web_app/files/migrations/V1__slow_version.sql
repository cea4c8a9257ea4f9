-- The original challenge's slow query: five seconds of pg_sleep, then version().
-- The sleep is fixed, not a parameter, so `SELECT slow_version()` is the original's page.
CREATE OR REPLACE FUNCTION slow_version() RETURNS text
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
    PERFORM pg_sleep(5);
    RETURN version();
END;
$$;
