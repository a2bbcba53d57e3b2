"""Results on an S3-compatible store: moto's server on 127.0.0.1 with fake credentials."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from sweep.results import storage
from sweep.run import pipeline
from sweep.kinds import SCHEMAS
from sweep.results.store import ResultStore

pytest.importorskip("moto")
BUCKET = "sweeps"


@pytest.fixture
def s3_root() -> Iterator[str]:
    """A results URI in a fresh folder of a local S3 server; endpoint and keys ride in the URI.

    moto keeps one in-memory S3 per process whatever the server, so each use gets its own
    results folder (a study another test wrote there would be seen otherwise)."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client("s3", endpoint_url=f"http://{host}:{port}", aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")
    if BUCKET not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=BUCKET)
    folder = f"results-{uuid.uuid4().hex[:8]}"
    yield f"s3://test:test@{BUCKET}/{folder}?endpoint_override={host}:{port}&scheme=http&region=us-east-1"
    server.stop()


def test_uri_queries_stay_at_the_end_when_joining():
    assert storage.join("s3://b/x?scheme=http", "study", "kind=neuron") == "s3://b/x/study/kind=neuron?scheme=http"


@pytest.mark.slow
@pytest.mark.ray
def test_sweep_writes_parts_models_and_manifest_to_s3_and_resumes(local_ray, run_config, s3_root):
    quoted = f"paths.results='{s3_root}'"  # Hydra needs quotes around a value holding '=' and '&'
    cfg = run_config("model.hidden_layer_sizes=[64,32]", "model.name=tiny", "model.max_iter=20", quoted)
    first = pipeline.run(cfg)
    store = ResultStore(s3_root, cfg.study, SCHEMAS)
    df = store.read("neuron")
    assert len(df) == first.rows_written == 64 + 32 and not df.duplicated(["layer", "unit"]).any()
    manifest = store.read_manifest()
    fs, base = storage.resolve(s3_root)
    summary = storage.read_bytes(fs, storage.join(base, cfg.study, "_manifest.json"))
    assert [r["seed"] for r in manifest["runs"]] == [0] and b'"model_path": "s3://' in summary
    assert storage.exists(fs, storage.resolve(manifest["runs"][0]["model_path"])[1])
    assert pipeline.run(cfg).rows_written == 0
