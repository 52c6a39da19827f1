"""The API spec: Cortex 0.35's RealtimeAPI YAML, validated with pydantic.

A Cortex user brings their spec unchanged. Fields Cortex had that mean nothing on a single
replica (compute, autoscaling, ...) are accepted and reported once as not applicable; fields
Cortex never had are errors (typos are caught). Reloader settings live in `reloading:`.
`compute.inf` (Inferentia chips) is the exception: it tells the TensorFlow handler that a
version may be only its `saved_model.pb`, as Neuron-compiled models are.
Every error names the field, what was expected and what was found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from agent.domain.caching import CacheSizes
from agent.domain.errors import SpecError
from agent.domain.locations import parse_location
from agent.domain.routing import ModelSet, ModelSource, is_model_name
from agent.domain.settings import ReloadingSettings, environment_variable

# Accepted for compatibility, meaningless on one replica: reported once, then ignored.
# (`compute` is reported field by field: `compute.inf` means something to the TensorFlow handler.)
NOT_APPLICABLE_API_FIELDS = ("autoscaling", "update_strategy", "networking")
NOT_APPLICABLE_HANDLER_FIELDS = (
    "image",
    "tensorflow_serving_image",
    "shm_size",
    "dependencies",
    "server_side_batching",
)


def _folder_name(value: str) -> str:
    """Model and API names become folder and queue names: no '/', '..' or empty names."""
    if not is_model_name(value):
        raise ValueError(f"expected a name usable as a folder name (no '/', not '.' or '..'), found {value!r}")
    return value


def _location(value: str | None) -> str | None:
    """A model path is `s3://bucket/prefix` or a local folder (checked here, resolved later)."""
    if value is not None:
        parse_location(value)
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelPathSpec(_Strict):
    name: str
    path: str
    signature_key: str | None = None

    _name_is_a_folder_name = field_validator("name")(_folder_name)
    _path_is_a_location = field_validator("path")(_location)


class ModelsSpec(_Strict):
    """`multi_model_reloading` (python handler) or `models` (tensorflow handler)."""

    path: str | None = None
    paths: list[ModelPathSpec] | None = None
    dir: str | None = None
    signature_key: str | None = None
    # Multi-model caching: entries ((model, version) each) in memory / version folders on disk.
    cache_size: int | None = Field(None, ge=1, strict=True)
    disk_cache_size: int | None = Field(None, ge=1, strict=True, validate_default=True)

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ModelsSpec:
        given = [name for name in ("path", "paths", "dir") if getattr(self, name) is not None]
        if len(given) != 1:
            found = " and ".join(repr(name) for name in given) if given else "none of them"
            raise ValueError(f"expected exactly one of 'path', 'paths' or 'dir', found {found}")
        if self.paths is not None:
            if not self.paths:
                raise ValueError("expected at least one entry in 'paths', found an empty list")
            names = [entry.name for entry in self.paths]
            duplicates = sorted({name for name in names if names.count(name) > 1})
            if duplicates:
                raise ValueError(f"expected unique model names in 'paths', found duplicates: {duplicates}")
        return self

    @property
    def cache(self) -> CacheSizes | None:
        if self.cache_size is None or self.disk_cache_size is None:
            return None
        return CacheSizes(self.cache_size, self.disk_cache_size)

    _locations_parse = field_validator("path", "dir")(_location)

    @field_validator("disk_cache_size")
    @classmethod
    def _cache_sizes_agree(cls, disk: int | None, info: ValidationInfo) -> int | None:
        """Cortex's rules: both or neither, and no more entries in memory than folders on disk."""
        if "cache_size" not in info.data:
            return disk  # cache_size itself is invalid, and said so
        memory = info.data["cache_size"]
        if memory is not None and disk is None:
            raise ValueError(f"expected disk_cache_size with cache_size (both or neither), found cache_size: {memory}")
        if memory is None and disk is not None:
            raise ValueError(
                f"expected cache_size with disk_cache_size (both or neither), found disk_cache_size: {disk} "
                "and no cache_size"
            )
        if memory is not None and disk is not None and memory > disk:
            raise ValueError(
                f"expected at least cache_size (every entry in memory keeps its folder on disk), "
                f"found disk_cache_size: {disk} < cache_size: {memory}"
            )
        return disk


class ComputeSpec(BaseModel):
    """Cortex's `compute`: `inf` is used (see the module docstring); cpu, gpu, mem, ... are accepted as before."""

    model_config = ConfigDict(extra="allow", frozen=True)

    inf: int = Field(0, ge=0, strict=True)  # Inferentia chips; above 0, a graph-only SavedModel is complete


class HandlerSpec(_Strict):
    type: Literal["python", "tensorflow"]
    path: str
    config: dict[str, Any] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    python_path: str | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    processes_per_replica: int = Field(1, ge=1)
    threads_per_process: int = Field(1, ge=1, le=1024)
    multi_model_reloading: ModelsSpec | None = None
    models: ModelsSpec | None = None
    # a gRPC API: this file's one service is served on the API's port (agent/api/grpc_server.py)
    protobuf_path: str | None = None
    # accepted, not applicable here
    image: str | None = None
    tensorflow_serving_image: str | None = None
    shm_size: str | None = None
    dependencies: dict[str, Any] | None = None
    server_side_batching: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _models_field_matches_type(self) -> HandlerSpec:
        if self.type == "python" and self.models is not None:
            raise ValueError("'models' is for the tensorflow handler; the python handler uses 'multi_model_reloading'")
        if self.type == "tensorflow" and self.multi_model_reloading is not None:
            raise ValueError("'multi_model_reloading' is for the python handler; the tensorflow handler uses 'models'")
        if self.type == "tensorflow" and self.models is None:
            raise ValueError("the tensorflow handler needs 'models' (path, paths or dir)")
        return self


class ApiSpec(_Strict):
    name: str
    kind: Literal["RealtimeAPI"]
    handler: HandlerSpec
    compute: ComputeSpec = Field(default_factory=ComputeSpec)
    autoscaling: dict[str, Any] | None = None
    update_strategy: dict[str, Any] | None = None
    networking: dict[str, Any] | None = None
    # validated from {} when absent, so environment overrides are checked with the field's name
    reloading: ReloadingSettings = Field(default_factory=dict, validate_default=True)

    _name_is_a_folder_name = field_validator("name")(_folder_name)

    @field_validator("compute", mode="before")
    @classmethod
    def _empty_compute(cls, value: Any) -> Any:
        return {} if value is None else value  # `compute:` with nothing under it, as before

    @field_validator("reloading", mode="before")
    @classmethod
    def _settings_read_environment(cls, value: Any) -> Any:
        # Built here (not validated as a plain model) so environment overrides apply.
        if isinstance(value, dict):
            return ReloadingSettings(**value)
        return value


class LoadedSpec(BaseModel):
    """One API of a spec file, with the paths resolved against the spec's folder."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    api: ApiSpec
    spec_dir: Path
    models: ModelSet | None

    @property
    def handler_path(self) -> Path:
        return (self.spec_dir / self.api.handler.path).resolve()

    @property
    def protobuf_path(self) -> Path | None:
        path = self.api.handler.protobuf_path
        return (self.spec_dir / path).resolve() if path else None

    @property
    def python_path(self) -> Path:
        return (self.spec_dir / (self.api.handler.python_path or ".")).resolve()

    def not_applicable_fields(self) -> list[str]:
        fields = [f"compute.{name}" for name in sorted(self.api.compute.model_extra or {})]
        if self.api.compute.inf and self.api.handler.type == "python":
            fields.append("compute.inf")  # only the TensorFlow handler's completeness check reads it
        fields += [name for name in NOT_APPLICABLE_API_FIELDS if getattr(self.api, name) is not None]
        fields += [f"handler.{name}" for name in NOT_APPLICABLE_HANDLER_FIELDS if getattr(self.api.handler, name)]
        return fields

    @property
    def cache(self) -> CacheSizes | None:
        """`cache_size` / `disk_cache_size`, when set: multi-model caching is on."""
        models = self.api.handler.multi_model_reloading or self.api.handler.models
        return models.cache if models is not None else None


def parse_spec(text: str, path: Path, api_name: str | None, spec_dir: Path) -> LoadedSpec:
    """Validate a spec file's text (`path` names it in errors; relative paths are under the absolute
    `spec_dir`); raise SpecError naming the field on any problem. Reading the file is the caller's
    (agent.boundaries.spec_file.load_spec)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: expected YAML, found a syntax error: {error}") from error
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise SpecError(f"{path}: expected a list of APIs, found {type(raw).__name__}")
    index = _select(raw, api_name, path)
    try:
        api = ApiSpec.model_validate(raw[index])
    except ValidationError as error:
        name = raw[index].get("name", "?") if isinstance(raw[index], dict) else "?"
        raise SpecError(format_validation_error(error, f"{path}: api {name!r}")) from None
    return LoadedSpec(api=api, spec_dir=spec_dir, models=_model_set(api, spec_dir))


def _select(raw: list[Any], api_name: str | None, path: Path) -> int:
    names = [entry.get("name") if isinstance(entry, dict) else None for entry in raw]
    if api_name is not None:
        if api_name not in names:
            raise SpecError(f"{path}: expected an API named {api_name!r}, found {names}")
        return names.index(api_name)
    if len(raw) > 1:
        raise SpecError(f"{path}: holds {len(raw)} APIs {names}; choose one with --api NAME")
    return 0


def _model_set(api: ApiSpec, spec_dir: Path) -> ModelSet | None:
    models = api.handler.multi_model_reloading or api.handler.models
    if models is None:
        return None
    if models.dir is not None:
        return ModelSet(directory=parse_location(models.dir, spec_dir), signature_key=models.signature_key)
    if models.path is not None:
        source = ModelSource(api.name, parse_location(models.path, spec_dir), models.signature_key)
        return ModelSet(fixed=(source,), single=True)
    assert models.paths is not None
    return ModelSet(
        fixed=tuple(
            ModelSource(entry.name, parse_location(entry.path, spec_dir), entry.signature_key or models.signature_key)
            for entry in models.paths
        )
    )


def format_validation_error(error: ValidationError, where: str) -> str:
    lines = [f"{where}: invalid spec"]
    for problem in error.errors():
        field = _field_name(problem["loc"])
        if len(problem["loc"]) == 2 and problem["loc"][0] == "reloading":
            variable = environment_variable(str(problem["loc"][1]))
            if variable is not None:
                field += f" (from the environment variable {variable})"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown field (Cortex 0.35 has no such field; check its spelling)"
        elif problem["type"] == "missing":
            message = "required field is missing"
        elif "input" in problem and problem["type"] not in ("value_error",):
            message = f"{message}; found {problem['input']!r}"
        lines.append(f"  {field or '(top level)'}: {message}")
    return "\n".join(lines)


def _field_name(location: tuple[int | str, ...]) -> str:
    """pydantic's error location as the spec's path: `handler.multi_model_reloading.paths[0].path`."""
    name = ""
    for part in location:
        if isinstance(part, int):
            name += f"[{part}]"
        elif not part.startswith("function-"):
            name += f".{part}" if name else part
    return name
