"""`bench.throughput --encryption` measures what the payload codec costs (issue 15): a second
worker and the bench's own client run with a throwaway key. These checks need no server, so CI
catches a bench whose option or key is broken before anyone runs it for half an hour."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload

from bench.throughput import ENCRYPTED, PLAIN, client_settings, order, parse_args, worker_envs
from temporal_journeys.journeys.settings import ENCRYPTION_KEY_BYTES, ENCRYPTION_KEYS, Settings
from temporal_journeys.workflows.codec import ENCODING, EncryptionCodec, data_converter


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENCRYPTION_KEYS, raising=False)
    monkeypatch.chdir(tmp_path)  # and no .env file


def envs(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    return worker_envs("sqlite:///:memory:", "127.0.0.1:7233", args)


def worker_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the worker process reads from the environment it is given."""
    for name, value in env.items():
        if name.startswith("JOURNEYS_"):
            monkeypatch.setenv(name, value)
    return Settings()


def test_the_throughput_bench_accepts_encryption_and_keeps_its_other_options():
    args = parse_args(["--encryption", "--quick", "--no-latency", "--rounds", "2"])
    assert (args.encryption, args.quick, args.no_latency, args.rounds) == (True, True, True, 2)
    assert parse_args([]).encryption is False


async def test_with_encryption_the_worker_and_the_client_share_one_valid_fresh_key(
    clean_environment: None, monkeypatch: pytest.MonkeyPatch
):
    env = envs(parse_args(["--encryption"]))[ENCRYPTED]
    settings = worker_settings(env, monkeypatch)

    [key] = settings.encryption_keys.values()
    assert len(key.get_secret_value()) == ENCRYPTION_KEY_BYTES
    assert settings.task_queue != envs(parse_args([]))[PLAIN]["JOURNEYS_TASK_QUEUE"]
    # What the bench's client encrypts, the worker's codec decrypts.
    client_codec = data_converter(client_settings(env)).payload_codec
    worker_codec = data_converter(settings).payload_codec
    assert isinstance(client_codec, EncryptionCodec) and isinstance(worker_codec, EncryptionCodec)
    payload = Payload(metadata={"encoding": b"json/plain"}, data=b'"bench"')
    [sealed] = await client_codec.encode([payload])
    assert sealed.metadata["encoding"] == ENCODING
    assert await worker_codec.decode([sealed]) == [payload]
    # A throwaway key per run, never a published one.
    assert env[ENCRYPTION_KEYS] != envs(parse_args(["--encryption"]))[ENCRYPTED][ENCRYPTION_KEYS]


def test_the_unencrypted_side_stays_unencrypted_when_the_caller_has_keys(
    clean_environment: None, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(ENCRYPTION_KEYS, "k1:" + "A" * 43 + "=")
    env = envs(parse_args(["--encryption"]))[PLAIN]

    assert worker_settings(env, monkeypatch).encryption_keys == {}
    assert data_converter(client_settings(env)).payload_codec is None


def test_every_round_runs_each_setup_and_side_in_two_mirrored_halves():
    assert order([PLAIN]) == [
        (PLAIN, "minimal"),
        (PLAIN, "journey"),
        (PLAIN, "journey"),
        (PLAIN, "minimal"),
    ]
    halves = order([PLAIN, ENCRYPTED])
    assert halves == halves[::-1]
    assert sorted(set(halves)) == sorted(
        (setup, side) for setup in (PLAIN, ENCRYPTED) for side in ("journey", "minimal")
    )
    assert all(halves.count(half) == 2 for half in halves)
