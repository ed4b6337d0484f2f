-- How many migrations this database has applied, for the agent's diagnostics and readiness
-- checks. The agent's role cannot read the drizzle schema; this function runs as its owner.
CREATE FUNCTION gtm_schema_version()
RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT count(*)::integer FROM drizzle.__drizzle_migrations $$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION gtm_schema_version() FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION gtm_schema_version() TO gtm_agent;
