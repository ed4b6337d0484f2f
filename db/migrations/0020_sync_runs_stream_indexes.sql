-- Each stream's latest run and the runs still running, found without reading a connection's whole
-- history: every run's start and end looks for both (pipeline/run-sync.ts).
CREATE INDEX "sync_runs_connector_stream_idx" ON "sync_runs" USING btree ("connector_id","stream","started_at");--> statement-breakpoint
CREATE INDEX "sync_runs_running_idx" ON "sync_runs" USING btree ("connector_id") WHERE "sync_runs"."status" = 'running';