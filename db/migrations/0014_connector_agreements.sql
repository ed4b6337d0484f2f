CREATE TABLE "connector_agreements" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" text NOT NULL,
	"connector" text NOT NULL,
	"agreement" text NOT NULL,
	"accepted_by" text NOT NULL,
	"accepted_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "connector_agreements_tenant_connector_key" UNIQUE("tenant_id","connector","agreement")
);
--> statement-breakpoint
ALTER TABLE "connector_agreements" ADD CONSTRAINT "connector_agreements_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;