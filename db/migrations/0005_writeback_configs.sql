CREATE TABLE "writeback_configs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" text NOT NULL,
	"connector_type" text NOT NULL,
	"entity_type" text NOT NULL,
	"field_map" jsonb NOT NULL,
	"enabled" boolean NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "writeback_configs_tenant_connector_entity_key" UNIQUE("tenant_id","connector_type","entity_type")
);
--> statement-breakpoint
ALTER TABLE "writeback_configs" ADD CONSTRAINT "writeback_configs_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "writeback_queue_record_idx" ON "writeback_queue" USING btree ("tenant_id","connector_type","entity_type","external_id","seq") WHERE status = 'pending';