"""Raw pulls: one daily-partitioned asset per source, built from the source registry.

A backfill of any range is one run: the asset receives the whole range and the source's client
fetches it in as few requests as the provider's page size allows. The range is replaced in one
transaction, so re-running changes nothing and a failure leaves the stored days as they were.
"""

from decimal import Decimal

import dagster as dg
from dagster import AssetExecutionContext

from aispend_pipeline.core.money import parse_money
from aispend_pipeline.defs.asset_defaults import DAILY_ASSET
from aispend_pipeline.defs.metadata import range_metadata, stored_summary, table_metadata, usd
from aispend_pipeline.defs.partitions import partition_dates
from aispend_pipeline.schemas.validation import validate
from aispend_pipeline.sources.base import Source, SourceResource
from aispend_pipeline.sources.registry import SOURCES

TOTAL_CHECK = "stored_total_matches_source"


def raw_asset_key(source: Source) -> dg.AssetKey:
    return dg.AssetKey([source.raw_table.schema, source.raw_table.name])


def build_raw_asset(source: Source) -> dg.AssetsDefinition:
    key = raw_asset_key(source)
    money_column = source.money_column

    @dg.asset(
        key=key,
        description=f"{source.title}: {source.raw_table.description}",
        group_name="ingest",
        kinds=set(source.kinds),
        **DAILY_ASSET,
        tags={"layer": "raw", "provider": source.name, "data_lag": source.data_lag},
        required_resource_keys={source.resource_key, "warehouse"},
        check_specs=[
            dg.AssetCheckSpec(TOTAL_CHECK, asset=key, description="The stored total equals what the source returned.")
        ],
    )
    def _raw(context: AssetExecutionContext) -> dg.MaterializeResult:
        start, end = partition_dates(context)
        resource: SourceResource = getattr(context.resources, source.resource_key)
        warehouse = context.resources.warehouse.warehouse()
        if not resource.is_configured:
            context.log.info(f"{source.name}: {resource.not_configured_reason}; stored days left as they are")
            return dg.MaterializeResult(
                metadata={
                    "status": resource.not_configured_reason,
                    "dagster/row_count": 0,
                    **range_metadata(start, end),
                },
                check_results=[
                    dg.AssetCheckResult(check_name=TOTAL_CHECK, passed=True, metadata={"status": "not configured"})
                ],
            )
        pull = resource.pull(start, end)
        frame = validate(source.raw_table, pull.frame, source.name)
        source_total = sum((parse_money(v) for v in frame[money_column]), Decimal(0))
        if pull.days is None:
            warehouse.replace_range(source.raw_table, frame, start, end)
        else:  # only the days the answer covers: older stored days stay as they are
            warehouse.replace_days(source.raw_table, frame, sorted(d for d in pull.days if start <= d < end))
        stored_rows, stored_total = stored_summary(warehouse, source.raw_table, start, end, money_column)
        context.log.info(f"{source.name}: {stored_rows} rows, {source_total} USD, {pull.api_requests} API requests")
        return dg.MaterializeResult(
            metadata={
                "status": "loaded",
                "dagster/row_count": stored_rows,
                "total_usd": usd(stored_total),
                "api_requests": pull.api_requests,
                **range_metadata(start, end),
                **table_metadata(warehouse, source.raw_table, start, end, money_column),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=TOTAL_CHECK,
                    passed=stored_total == source_total and stored_rows == len(frame),
                    metadata={
                        "source_total_usd": usd(source_total),
                        "stored_total_usd": usd(stored_total),
                        "source_rows": len(frame),
                        "stored_rows": stored_rows,
                    },
                )
            ],
        )

    return _raw


RAW_ASSETS = [build_raw_asset(source) for source in SOURCES]
