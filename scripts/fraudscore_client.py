"""A small client for the fraudscore API (standard library only, plus tqdm for progress).

    python scripts/fraudscore_client.py submit FILE [--wait] [--output OUT.csv] [--top-k 3]
    python scripts/fraudscore_client.py status JOB_ID
    python scripts/fraudscore_client.py download JOB_ID --output OUT.csv
    python scripts/fraudscore_client.py labels JOB_ID LABELS.csv [--model-name NAME] [--wait]
    python scripts/fraudscore_client.py train LABELED.csv --name NAME [--label COL] [--wait]
    python scripts/fraudscore_client.py models [--delete NAME]
    python scripts/fraudscore_client.py defaults [--expected-fraud-rate 0.01 | --clear]

The API address comes from --url, else FRAUDSCORE_URL, else http://127.0.0.1:$API_PORT (the
port `make run` serves on; 5000 when unset). The token comes from --token or FRAUDSCORE_TOKEN.
`submit --wait` saves the predictions as NAME.predictions.csv in the current directory unless
--output says otherwise. The upload is streamed from disk, never read whole.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tqdm import tqdm

PIECE = 1 << 20


class ClientError(Exception):
    """The API said no (its message), or could not be reached."""


def default_url(environ: Mapping[str, str] = os.environ) -> str:
    """FRAUDSCORE_URL, else the local API on API_PORT (5000 when unset)."""
    if environ.get("FRAUDSCORE_URL"):
        return environ["FRAUDSCORE_URL"]
    return f"http://127.0.0.1:{environ.get('API_PORT') or 5000}"


def default_output(source: Path) -> Path:
    """NAME.predictions.csv in the current directory (never beside the input)."""
    return Path.cwd() / (source.name.split(".")[0] + ".predictions.csv")


class Client:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port
        self.secure = parts.scheme == "https"
        self.token = token

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.secure else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=300)

    def _request(
        self, method: str, path: str, body: Any = None, headers: dict | None = None
    ) -> Any:
        connection = self._connection()
        try:
            connection.request(
                method,
                path,
                body=body,
                headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
            )
            response = connection.getresponse()
        except OSError as exc:
            raise ClientError(
                f"cannot reach the API at {self.url} ({exc}); set --url or FRAUDSCORE_URL"
            ) from None
        if response.status >= 400:
            data = response.read()
            try:
                answer = json.loads(data)
                message = answer["error"]["message"]
                if answer.get("errors_url"):
                    message += f" (errors file: {answer['errors_url']})"
            except (ValueError, KeyError, TypeError):
                message = data[:200].decode("utf-8", "replace")
            raise ClientError(f"HTTP {response.status}: {message}")
        return response

    def json(self, method: str, path: str) -> dict[str, Any]:
        return json.loads(self._request(method, path).read())

    def submit(
        self, path: Path, options: dict[str, str], key: str | None, to: str = "/api/v1/jobs"
    ) -> dict[str, Any]:
        """Stream FILE as multipart/form-data with a known length and an upload progress bar."""
        boundary = uuid.uuid4().hex
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()  # noqa: E501
            for name, value in options.items()
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{path.name}"\r\nContent-Type: text/csv\r\n\r\n'
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = path.stat().st_size
        bar = tqdm(total=size, unit="B", unit_scale=True, desc="upload", file=sys.stderr)

        def body() -> Iterator[bytes]:
            yield head
            with path.open("rb") as handle:
                for piece in iter(lambda: handle.read(PIECE), b""):
                    bar.update(len(piece))
                    yield piece
            yield tail

        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        }
        if key:
            headers["Idempotency-Key"] = key
        try:
            return json.loads(self._request("POST", to, body(), headers).read())
        finally:
            bar.close()

    def wait(self, job_id: str, poll_s: float = 0.5) -> dict[str, Any]:
        bar = tqdm(total=100, unit="%", desc="queued", file=sys.stderr)
        try:
            while True:
                job = self.json("GET", f"/api/v1/jobs/{job_id}")
                bar.set_description(job["stage"] or job["state"])
                bar.n = job["progress"]["percent"]
                bar.refresh()
                if job["state"] in ("succeeded", "failed", "cancelled"):
                    return job
                time.sleep(poll_s)
        finally:
            bar.close()

    def download(self, job_id: str, output: Path) -> int:
        response = self._request("GET", f"/api/v1/jobs/{job_id}/result")
        tmp = output.with_name(output.name + ".part")
        written = 0
        with tmp.open("wb") as out:
            for piece in iter(lambda: response.read(PIECE), b""):
                out.write(piece)
                written += len(piece)
        tmp.replace(output)
        return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=default_url(), help="default: %(default)s")
    parser.add_argument("--token", default=os.environ.get("FRAUDSCORE_TOKEN", ""))
    commands = parser.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="upload a CSV and start a job")
    submit.add_argument("file", type=Path)
    submit.add_argument("--wait", action="store_true", help="wait, then download the result")
    submit.add_argument("--output", type=Path, help="where to save the predictions")
    submit.add_argument("--top-k", type=int)
    submit.add_argument("--alert-rate", type=float, help="share of rows marked high, e.g. 0.01")
    submit.add_argument("--no-reasons", action="store_true", help="no reasons column")
    submit.add_argument("--idempotency-key")
    submit.add_argument(
        "--expected-fraud-rate", type=float, help="the share of fraud you expect, e.g. 0.002"
    )
    labels = commands.add_parser("labels", help="send a scored job's confirmed outcomes")
    labels.add_argument("job_id")
    labels.add_argument("file", type=Path, help="CSV: row_number (or the id column), label")
    labels.add_argument("--model-name", help="the team model they train (default team-SCHEMA)")
    labels.add_argument("--wait", action="store_true", help="wait for the training job")
    train = commands.add_parser("train", help="train a team model from a labeled CSV")
    train.add_argument("file", type=Path)
    train.add_argument("--name", required=True)
    train.add_argument("--label", help="the label column (default: found by its name)")
    train.add_argument("--wait", action="store_true", help="wait for the training job")
    models = commands.add_parser("models", help="list the models your jobs use")
    models.add_argument("--delete", metavar="NAME", help="delete a team model (NAME or NAME@2)")
    defaults = commands.add_parser("defaults", help="show or set your defaults for every job")
    defaults.add_argument("--expected-fraud-rate", type=float, help="e.g. 0.01")
    defaults.add_argument("--clear", action="store_true", help="forget the expected fraud rate")
    status = commands.add_parser("status", help="show a job")
    status.add_argument("job_id")
    download = commands.add_parser("download", help="save a job's predictions")
    download.add_argument("job_id")
    download.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("a token is needed: --token or FRAUDSCORE_TOKEN")
    client = Client(args.url, args.token)
    try:
        if args.command in COMMANDS:
            return COMMANDS[args.command](client, args)
        if args.command == "status":
            print(json.dumps(client.json("GET", f"/api/v1/jobs/{args.job_id}"), indent=2))
        elif args.command == "download":
            print(f"saved {client.download(args.job_id, args.output)} bytes to {args.output}")
        else:
            if not args.file.is_file():
                raise ClientError(f"no such file: {args.file}")
            options = {"top_k": str(args.top_k)} if args.top_k else {}
            if args.alert_rate:
                options["alert_rate"] = str(args.alert_rate)
            if args.no_reasons:
                options["reasons"] = "false"
            if args.expected_fraud_rate:
                options["expected_fraud_rate"] = str(args.expected_fraud_rate)
            accepted = client.submit(args.file, options, args.idempotency_key)
            print(f"job {accepted['job_id']}", file=sys.stderr)
            if not args.wait:
                print(json.dumps(accepted))
                return 0
            job = client.wait(accepted["job_id"])
            if job["state"] != "succeeded":
                raise ClientError(f"job {job['state']}: {job.get('error', '')}")
            output = args.output or default_output(args.file)
            client.download(job["job_id"], output)
            # The riskiest rows are for the job page; the CLI prints the counts.
            summary = {k: v for k, v in job["stats"].items() if k != "riskiest_rows"}
            for warning in (job.get("methods_used") or {}).get("warnings", []):
                print(f"warning: {warning}", file=sys.stderr)
            print(
                json.dumps(
                    {"job_id": job["job_id"], "output": str(output), "stats": summary},
                    indent=2,
                )
            )
    except ClientError as exc:
        print(f"fraudscore_client: {exc}", file=sys.stderr)
        return 1
    return 0


def send_labels(client: Client, args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise ClientError(f"no such file: {args.file}")
    fields = {"model_name": args.model_name} if args.model_name else {}
    answer = client.submit(args.file, fields, None, f"/api/v1/jobs/{args.job_id}/labels")
    print(answer["message"], file=sys.stderr)
    training = answer.get("training_job")
    if training and args.wait:
        return _trained(client, training["job_id"])
    print(json.dumps(answer, indent=2))
    return 0


def train_model(client: Client, args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise ClientError(f"no such file: {args.file}")
    fields = {"name": args.name, **({"label": args.label} if args.label else {})}
    accepted = client.submit(args.file, fields, None, "/api/v1/models")
    print(f"training job {accepted['job_id']}", file=sys.stderr)
    if args.wait:
        return _trained(client, accepted["job_id"])
    print(json.dumps(accepted, indent=2))
    return 0


def _trained(client: Client, job_id: str) -> int:
    job = client.wait(job_id)
    if job["state"] != "succeeded":
        raise ClientError(f"training job {job['state']}: {job.get('error', '')}")
    metrics = job["stats"]["metrics"]
    print(
        f"trained {job['model']}: on your labels, out of time, ROC {metrics['roc_auc']:.3f} "
        f"(label-free {metrics['label_free_roc_auc']:.3f}); fraud rate {metrics['fraud_rate']:.2%}"
    )
    return 0


def list_models(client: Client, args: argparse.Namespace) -> int:
    if args.delete:
        deleted = client.json("DELETE", f"/api/v1/models/{args.delete}")["deleted"]
        print(f"deleted {', '.join(deleted)}")
        return 0
    for model in client.json("GET", "/api/v1/models")["models"]:
        roc = f"{model['roc_auc']:.3f}" if model["roc_auc"] is not None else "-"
        print(f"{model['name']:40s} {model['kind']:9s} {model['owner']:7s} ROC {roc}")
    return 0


def set_defaults(client: Client, args: argparse.Namespace) -> int:
    if args.expected_fraud_rate is None and not args.clear:
        print(json.dumps(client.json("GET", "/api/v1/settings")))
        return 0
    body = json.dumps({"expected_fraud_rate": None if args.clear else args.expected_fraud_rate})
    headers = {"Content-Type": "application/json"}
    print(client._request("PUT", "/api/v1/settings", body, headers).read().decode())
    return 0


COMMANDS = {
    "labels": send_labels,
    "train": train_model,
    "models": list_models,
    "defaults": set_defaults,
}


if __name__ == "__main__":
    sys.exit(main())
