CREATE TABLE "fathom_meetings" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" text NOT NULL,
	"recording_id" bigint NOT NULL,
	"title" text,
	"url" text,
	"share_url" text,
	"started_at" timestamp with time zone,
	"ended_at" timestamp with time zone,
	"invitees" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"recorded_by" jsonb,
	"transcript" jsonb,
	"summary" text,
	"action_items" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "fathom_meetings_tenant_recording_key" UNIQUE("tenant_id","recording_id")
);
--> statement-breakpoint
ALTER TABLE "fathom_meetings" ADD CONSTRAINT "fathom_meetings_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "fathom_meetings_tenant_started_idx" ON "fathom_meetings" USING btree ("tenant_id","started_at");