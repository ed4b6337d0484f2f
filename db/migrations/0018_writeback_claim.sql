-- Who claimed a writeback item to send it, so that sender's retry (its worker died mid-batch)
-- takes the item back at once instead of after the claim lease.
ALTER TABLE "writeback_queue" ADD COLUMN "claimed_by" text;