"""The run configuration: one YAML file, validated before any work starts.

Every section is a strict pydantic model: an unknown or mistyped key, a wrong type or a
missing input fails at once with the field's dotted path and what was expected.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import Discriminator, Field, Tag, ValidationError, create_model, field_validator, model_validator

from curate.config_base import StrictModel
from curate.pipeline import registry
from curate.pipeline.config import ExtractConfig
from curate.train.config import TrainConfig

M = TypeVar("M", bound=StrictModel)

# The stage sections, built from the registry (one field per registered stage).
FiltersConfig = registry.group_model("filters")
ClassifiersConfig = registry.group_model("classifiers")
DedupConfig = registry.group_model("dedup")

COMMONCRAWL_HTTPS = "https://data.commoncrawl.org/"
COMMONCRAWL_S3 = "s3://commoncrawl/"


class FailureBudget(StrictModel):
    max_failed_fraction: float = Field(
        0.05, ge=0, le=1,
        description="inputs that fail for good (download retries exhausted, unreadable) may be at most this share of "
                    "all inputs; the run still completes, but exits 1 naming them when there are more",
    )


class LocalInput(FailureBudget):
    """WARC files on a local (or mounted) filesystem, by path or glob."""

    source: Literal["local"] = "local"
    paths: list[str] = Field(min_length=1, description="paths or globs of .warc.gz / .warc files")
    crawl: str | None = Field(None, description="crawl label written to the `crawl` column")


class RemoteInput(FailureBudget):
    """How remote files are fetched: a failed request or a dropped connection is retried
    `retries` times, waiting `backoff_s`, then twice as long each time (with jitter)."""

    retries: int = Field(5, ge=0, description="extra attempts after a failed request or a connection that dropped without progress")
    backoff_s: float = Field(1.0, ge=0, description="first wait before a retry; doubles each retry")
    timeout_s: float = Field(60.0, gt=0, description="connect/read timeout of one request")


class UrlInput(RemoteInput):
    """WARC files by URL (https://, http://, s3://)."""

    source: Literal["urls"]
    urls: list[str] = Field(min_length=1)
    crawl: str | None = None


class CommonCrawlInput(RemoteInput):
    """WARC files of one Common Crawl crawl, listed from its `warc.paths.gz`."""

    source: Literal["commoncrawl"]
    crawl: str = Field(pattern=r"^CC-MAIN-\d{4}-\d{2}$", description="crawl id, e.g. CC-MAIN-2024-10")
    files: int | list[int] = Field(
        1, description="how many WARC files to take (the first N of a seeded shuffle), or their indices in warc.paths.gz"
    )
    seed: int = 0
    base_url: str = Field(COMMONCRAWL_HTTPS, description="https://data.commoncrawl.org/ or s3://commoncrawl/")

    @field_validator("files")
    @classmethod
    def _files_positive(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be >= 1")
        if isinstance(v, list) and (not v or min(v) < 0):
            raise ValueError("must be a non-empty list of indices >= 0")
        return v


def _input_kind(v: object) -> str:
    # `source` may be omitted for local paths, the common case.
    if isinstance(v, dict):
        return v.get("source", "local")
    return getattr(v, "source", "local")


InputConfig = Annotated[
    Annotated[LocalInput, Tag("local")] | Annotated[UrlInput, Tag("urls")] | Annotated[CommonCrawlInput, Tag("commoncrawl")],
    Discriminator(_input_kind, custom_error_type="input_source", custom_error_message="input.source must be one of: local, urls, commoncrawl"),
]


class OutputConfig(StrictModel):
    path: str = Field(description="folder for shards/, rejected/, stats.json, manifest.json")
    rows_per_shard: int = Field(10_000, ge=1)
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    rejected_text: bool = Field(True, description="keep the text of rejected rows in rejected/")
    cache_extraction: bool = Field(
        True, description="keep every input's rows after extraction (zstd Parquet under work/cache/, ~2.7 MB per 1,000 "
                          "documents of the example data), so a rerun with changed filter settings skips reading and extraction",
    )


class RayConfig(StrictModel):
    address: str | None = Field(None, description="join this cluster (also RAY_ADDRESS); None = start a local one")
    num_cpus: int | None = Field(None, ge=1, description="CPUs for the embedded local Ray (default: all)")
    dashboard: bool = Field(
        True, description="start Ray's dashboard with a local Ray; false: Ray keeps only a minimal dashboard process, "
        "without the module processes and their CPU"
    )
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(8265, ge=0, le=65535)
    dashboard_auth: Literal["token", "off"] = Field(
        "token", description="token: Ray's token auth, the printed URL carries nothing secret; off: no auth (only on 127.0.0.1)"
    )
    batch_size: int = Field(
        64, ge=1,
        description="documents per batch through extraction and filters; small batches (~2 s of trafilatura) keep every actor busy to the end",
    )
    object_store_memory_gb: float | None = Field(None, gt=0)
    per_document_object_store_mb: int | None = Field(
        None, ge=16,
        description="object-store budget of the per-document phase (blocks between reading and the last pool), constant in "
        "input size; default 64 MiB per CPU, at least 128 MiB (below ~64 MiB the readers stall extraction)",
    )

    @field_validator("dashboard_auth", mode="before")
    @classmethod
    def _auth_as_written(cls, v: object) -> object:
        # YAML 1.1 reads a bare `off`/`no`/`false` as the boolean False (and `on`/`true` as True).
        if isinstance(v, bool):
            return "token" if v else "off"
        if isinstance(v, str) and v.strip().lower() in ("off", "false", "no", "disabled", "none"):
            return "off"
        return v


class ReadConfig(StrictModel):
    max_record_bytes: int = Field(5_000_000, ge=1024, description="larger HTML payloads are skipped as warc:too_large")
    records_per_batch: int = Field(64, ge=1, description="WARC records per block handed from reading to extraction")


class StorageConfig(StrictModel):
    """How object-store paths (`s3://...`) are reached. Credentials come from the usual chain
    (env, profile, instance role); those the driver has in AWS_* variables are shipped to the
    workers. Where the output is stored does not change it: not part of the fingerprint."""

    endpoint_url: str | None = Field(None, description="S3-compatible store (MinIO, Ceph, ...): its endpoint, e.g. http://minio:9000")
    anon: bool = Field(False, description="unsigned requests (public buckets); no credentials are sent")
    # Never dumped (so never written to config.json or printed): it may hold credentials.
    options: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False,
                                    description="further fsspec storage options, e.g. {profile: ..., client_kwargs: {region_name: ...}}")


class RunSettings(StrictModel):
    """The sections that are not stages; `Config` adds one per registered stage or group."""

    input: InputConfig
    output: OutputConfig
    ray: RayConfig = RayConfig()
    read: ReadConfig = ReadConfig()
    storage: StorageConfig = StorageConfig()
    train: TrainConfig | None = None

    @model_validator(mode="after")
    def _mixture_needs_labels(self) -> RunSettings:
        # Sections from the registry (`Config` adds them): reweighting by labels nobody writes is a mistake.
        mixture, classifiers = getattr(self, "mixture", None), getattr(self, "classifiers", None)
        if mixture is not None and mixture.enabled and not classifiers.topics.enabled:
            raise ValueError("mixture.enabled needs classifiers.topics.enabled: the mixture reweights by its labels")
        return self

    def deciding_settings(self, exclude: tuple[str, ...] = ("ray", "storage", "train")) -> dict[str, Any]:
        """Everything that decides the output (not where or how fast it runs, what it keeps to
        resume faster, nor when the run is called a failure)."""
        return self.model_dump(mode="json", exclude={**{k: True for k in exclude}, "input": {"max_failed_fraction"},
                                                     "output": {"cache_extraction"}})

    def fingerprint(self, exclude: tuple[str, ...] = ("ray", "storage", "train")) -> str:
        """Hash of `deciding_settings`."""
        return hashlib.sha256(json.dumps(self.deciding_settings(exclude), sort_keys=True).encode()).hexdigest()[:16]


Config = create_model("Config", __base__=RunSettings, __doc__="A whole run: one YAML file.", **registry.top_level_fields())
# Sections that are plain models here, re-exported for the code that names them.
__all__ = ["ClassifiersConfig", "Config", "DedupConfig", "ExtractConfig", "FiltersConfig", "load_config", "parse_config",
           "read_yaml_mapping", "validate_section"]


class ConfigError(ValueError):
    """A config that cannot run; the message names each bad field."""


def _format(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not (isinstance(p, str) and p in ("local", "urls", "commoncrawl")))
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see README config reference)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        got = e.get("input")
        extra = f" (got {got!r})" if e["type"] not in ("missing",) and not isinstance(got, dict) else ""
        lines.append(f"  {loc}: {msg}{extra}" if loc else f"  {msg.removeprefix('Value error, ')}{extra}")
    return "invalid config:\n" + "\n".join(lines)


def validate_section(model: type[M], data: dict) -> M:
    """`data` as `model`; a ConfigError naming every bad field otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format(err)) from None


def read_yaml_mapping(path: str | Path, sections: str = "input, output, ...") -> dict:
    """The mapping a YAML config file holds; a ConfigError if it is missing or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections ({sections}), got {type(data).__name__}")
    return data


def parse_config(data: dict) -> Config:
    return validate_section(Config, data)


def load_config(path: str | Path) -> Config:
    return parse_config(read_yaml_mapping(path))
