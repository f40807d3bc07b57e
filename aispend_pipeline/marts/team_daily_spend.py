"""Daily spend per team and provider, summed exactly from cost_line_items."""

from __future__ import annotations

from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS

TEAM_DAILY_SPEND_SQL = f"""
SELECT
    usage_date,
    team,
    provider,
    sum(cost_usd) AS cost_usd,
    coalesce(sum(cost_usd) FILTER (WHERE charge_category = 'Usage'), 0) AS usage_cost_usd,
    count(*) AS line_count
FROM {COST_LINE_ITEMS.qualified_name}
WHERE usage_date >= $start AND usage_date < $end
GROUP BY ALL
"""
