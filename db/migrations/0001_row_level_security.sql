-- Tenant isolation. The agent works as the role gtm_agent, which owns nothing, and every
-- tenant table forces row-level security, so a query that has not set app.tenant_id
-- (withTenant in db/tenant.ts does, per transaction) reads zero rows and cannot write.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gtm_agent') THEN
    CREATE ROLE gtm_agent NOLOGIN NOSUPERUSER NOBYPASSRLS;
  END IF;
  -- The migrating user connects for the agent too and switches to gtm_agent at connect time.
  IF NOT pg_has_role(current_user, 'gtm_agent', 'MEMBER') THEN
    EXECUTE format('GRANT gtm_agent TO %I', current_user);
  END IF;
END $$;
--> statement-breakpoint
GRANT USAGE ON SCHEMA public TO gtm_agent;
--> statement-breakpoint
GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, connectors, field_mappings, people, accounts, activities, sync_runs, quarantine TO gtm_agent;
--> statement-breakpoint
-- The audit log is append-only for the agent.
GRANT SELECT, INSERT ON audit_log TO gtm_agent;
--> statement-breakpoint
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['connectors', 'field_mappings', 'people', 'accounts', 'activities', 'sync_runs', 'quarantine', 'audit_log']
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format(
      'CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_setting(''app.tenant_id'', true)) WITH CHECK (tenant_id = current_setting(''app.tenant_id'', true))',
      t
    );
  END LOOP;
END $$;
--> statement-breakpoint
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY tenant_isolation ON tenants USING (id = current_setting('app.tenant_id', true)) WITH CHECK (id = current_setting('app.tenant_id', true));
--> statement-breakpoint
-- The operator's tenant directory (`gtm-agent tenants list`, key rotation) reads ids and names
-- through this function only, which runs as the owning role; the owner alone may read every
-- tenants row.
DO $$
BEGIN
  EXECUTE format('CREATE POLICY directory ON tenants FOR SELECT TO %I USING (true)', current_user);
END $$;
--> statement-breakpoint
CREATE FUNCTION gtm_tenant_directory()
RETURNS TABLE (id text, name text, slug text, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$ SELECT t.id, t.name, t.slug, t.created_at FROM tenants t ORDER BY t.id $$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION gtm_tenant_directory() FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION gtm_tenant_directory() TO gtm_agent;
