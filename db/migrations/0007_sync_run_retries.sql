ALTER TABLE "sync_runs" ADD COLUMN "retries" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "sync_runs" ADD COLUMN "retry_reasons" jsonb DEFAULT '{}'::jsonb NOT NULL;