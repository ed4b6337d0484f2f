-- The stream that last wrote each record, so the Connectors screen can count records per stream.
-- Rows written before are null until their stream reads them again.
ALTER TABLE "accounts" ADD COLUMN "stream" text;--> statement-breakpoint
ALTER TABLE "activities" ADD COLUMN "stream" text;--> statement-breakpoint
ALTER TABLE "people" ADD COLUMN "stream" text;