-- The webhook inbox is tenant data: the agent role may read and change it, and row-level security
-- (forced, so owners are bound too) shows each tenant only its rows.
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_inbox TO gtm_agent;
--> statement-breakpoint
ALTER TABLE webhook_inbox ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE webhook_inbox FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY tenant_isolation ON webhook_inbox USING (tenant_id = current_setting('app.tenant_id', true)) WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
