-- Every webhook queue (endpoint, campaign) that has deliveries, found by skipping through
-- the queue index (webhook_deliveries_queue): one probe per queue, however long the
-- queues. The delivery actor's scan (`streams`) and the metrics' backlog read it; one
-- definition, inlined by the planner into each.
CREATE FUNCTION webhook_queue_keys()
RETURNS TABLE (endpoint_id uuid, campaign_id uuid)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE queue AS (
        (SELECT d.endpoint_id, d.campaign_id FROM webhook_deliveries d
         ORDER BY d.endpoint_id, d.campaign_id LIMIT 1)
        UNION ALL
        SELECT n.endpoint_id, n.campaign_id FROM queue q
        CROSS JOIN LATERAL (
            SELECT d.endpoint_id, d.campaign_id FROM webhook_deliveries d
            WHERE (d.endpoint_id, d.campaign_id) > (q.endpoint_id, q.campaign_id)
            ORDER BY d.endpoint_id, d.campaign_id LIMIT 1) AS n
    )
    SELECT queue.endpoint_id, queue.campaign_id FROM queue
$$;
