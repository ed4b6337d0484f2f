-- Accepted terms are tenant data: the agent role may read and add them, and row-level security
-- (forced, so owners are bound too) shows each tenant only its rows.
GRANT SELECT, INSERT, UPDATE, DELETE ON connector_agreements TO gtm_agent;
--> statement-breakpoint
ALTER TABLE connector_agreements ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE connector_agreements FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY tenant_isolation ON connector_agreements USING (tenant_id = current_setting('app.tenant_id', true)) WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
