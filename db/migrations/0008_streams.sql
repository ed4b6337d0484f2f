CREATE TABLE "stream_state" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" text NOT NULL,
	"connector_id" uuid NOT NULL,
	"stream" text NOT NULL,
	"partition" text DEFAULT '' NOT NULL,
	"cursor" text,
	"last_run_id" uuid,
	"last_status" text,
	"last_sync_at" timestamp with time zone,
	"last_error" text,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "stream_state_tenant_connector_stream_partition_key" UNIQUE("tenant_id","connector_id","stream","partition")
);
--> statement-breakpoint
ALTER TABLE "field_mappings" DROP CONSTRAINT "field_mappings_tenant_connector_entity_key";--> statement-breakpoint
ALTER TABLE "field_mappings" ADD COLUMN "stream" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "sync_runs" ADD COLUMN "stream" text;--> statement-breakpoint
ALTER TABLE "sync_runs" ADD COLUMN "partition" text;--> statement-breakpoint
ALTER TABLE "stream_state" ADD CONSTRAINT "stream_state_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "stream_state" ADD CONSTRAINT "stream_state_connector_id_connectors_id_fk" FOREIGN KEY ("connector_id") REFERENCES "public"."connectors"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "field_mappings" ADD CONSTRAINT "field_mappings_tenant_connector_entity_stream_key" UNIQUE("tenant_id","connector_id","entity_type","stream");--> statement-breakpoint
-- Stream positions are tenant data: the agent role may read and change them, and row-level
-- security (forced, so owners are bound too) shows each tenant only its rows.
GRANT SELECT, INSERT, UPDATE, DELETE ON stream_state TO gtm_agent;
--> statement-breakpoint
ALTER TABLE stream_state ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE stream_state FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY tenant_isolation ON stream_state USING (tenant_id = current_setting('app.tenant_id', true)) WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
