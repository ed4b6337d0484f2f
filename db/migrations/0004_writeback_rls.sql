-- The writeback queue is tenant data like every other table: the agent role may read and change
-- it, and row-level security (forced, so owners are bound too) shows each tenant only its rows.
GRANT SELECT, INSERT, UPDATE, DELETE ON writeback_queue TO gtm_agent;
--> statement-breakpoint
ALTER TABLE writeback_queue ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE writeback_queue FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY tenant_isolation ON writeback_queue USING (tenant_id = current_setting('app.tenant_id', true)) WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
