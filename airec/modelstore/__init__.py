"""Where model versions live: one `ModelStore` interface, a files and a database implementation,
chosen once from AIREC_MODEL_STORE (make_store); the folder format; the name allow-list."""

from airec.modelstore.base import CorruptModel, ModelStore, StoreKind
from airec.modelstore.factory import make_store
from airec.modelstore.names import UnsafeName, safe_name

__all__ = ["CorruptModel", "ModelStore", "StoreKind", "UnsafeName", "make_store", "safe_name"]
