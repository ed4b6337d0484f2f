-- A failed run's error code (shared/errors.ts), so diagnostics can group recent failures by kind.
ALTER TABLE "sync_runs" ADD COLUMN "error_code" text;
