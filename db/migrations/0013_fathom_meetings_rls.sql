-- Fathom meetings are tenant data: the agent role may read and change them, and row-level
-- security (forced, so owners are bound too) shows each tenant only its rows.
GRANT SELECT, INSERT, UPDATE, DELETE ON fathom_meetings TO gtm_agent;
--> statement-breakpoint
ALTER TABLE fathom_meetings ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE fathom_meetings FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY tenant_isolation ON fathom_meetings USING (tenant_id = current_setting('app.tenant_id', true)) WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
