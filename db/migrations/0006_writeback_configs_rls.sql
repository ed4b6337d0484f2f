-- Writeback settings are tenant data: the agent role may read and change them, and row-level
-- security (forced, so owners are bound too) shows each tenant only its rows.
GRANT SELECT, INSERT, UPDATE, DELETE ON writeback_configs TO gtm_agent;
--> statement-breakpoint
ALTER TABLE writeback_configs ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE writeback_configs FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY tenant_isolation ON writeback_configs USING (tenant_id = current_setting('app.tenant_id', true)) WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
