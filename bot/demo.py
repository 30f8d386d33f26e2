"""``cartif-bot demo``: the README's first command — one scripted day of the negotiation, for real.

Where it sits: outside the cycle. It starts the local Microsoft 365 tenant in ``.data/demo``
(fresh each time) seeded with the CARTIF workspace, starts the real service (``cartif-bot run``,
a child process configured only from the tenant's connection file), and plays a day:

1. the service's start-up cycle builds the declared structure (groups, folders, grants);
2. delegates upload submissions into their working-group and country folders;
3. the secretariat drops the Zero Draft into WG-TF's "To circulate" folder, and later circulates
   Rev.1 with ``cartif-bot circulate --revises`` (a separate process, as an operator would);
4. someone shares a country's private folder by hand (a sharing link);
5. the secretariat triggers a manual sync with its own Entra ID token (app role ``Sync.Trigger``);
6. the demo prints what happened: changes seen, drift corrected, register entries, notices posted
   per Teams channel, and the URL of the local Teams page that renders the cards.

Every request goes through the production code paths (msal, msgraph-sdk,
office365-rest-python-client); the "other people" act through Graph as the tenant's admin app.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

DEMO_DIR = Path(".data/demo")
#: The demo's first cycle builds ~130 folders' permissions (~3,400 SharePoint resource units, see
#: docs/benchmarks.md). At the production budget of 1,200 RU/minute the retry layer would wait
#: out Retry-After for about three minutes; the demo's tenant allows more so it tells its story fast.
DEMO_RU_PER_MINUTE = 20_000
SERIES = "WG-TF"
WG_FOLDER = "Working groups/WG-TF"


def _say(text: str = "") -> None:
    print(text, flush=True)


class _Actor:
    """Another party on the site (delegates, the secretariat's staff): Graph as the tenant's admin app."""

    def __init__(self, info: dict[str, Any]) -> None:
        import msal
        import requests

        session = requests.Session()
        session.trust_env = False
        session.verify = info["ca_path"]
        self._app = msal.ConfidentialClientApplication(
            info["admin_client_id"], authority=info["authority"], client_credential=info["admin_client_secret"],
            instance_discovery=False, http_client=session)
        self._scope = info["graph_scope"]
        self.client = httpx.Client(base_url=f"{info['graph_url']}/drives/{info['drive_id']}", trust_env=False,
                                   verify=info["ca_path"], timeout=60, auth=self._bearer)

    def _bearer(self, request: httpx.Request) -> httpx.Request:
        result = self._app.acquire_token_for_client(scopes=[self._scope])
        request.headers["Authorization"] = f"Bearer {result['access_token']}"
        return request

    def upload(self, path: str, content: bytes) -> dict[str, Any]:
        response = self.client.put(f"/root:/{quote(path)}:/content", content=content)
        response.raise_for_status()
        return dict(response.json())

    def share(self, path: str) -> dict[str, Any]:
        response = self.client.post(f"/root:/{quote(path)}:/createLink", json={"type": "view", "scope": "organization"})
        response.raise_for_status()
        return dict(response.json())

    def close(self) -> None:
        self.client.close()


def _step_line(run: dict[str, Any]) -> list[str]:
    lines = []
    for step in run["steps"]:
        counts = ", ".join(f"{k} {v}" for k, v in step["counts"].items() if v)
        lines.append(f"      {step['name']:<12} {step['status']:<10} {counts}")
        lines.extend(f"      {'':<12} ! {finding}" for finding in step.get("findings", [])[:3])
    return lines


def _demo_text(name: str) -> bytes:
    return resources.files("bot").joinpath("demo_data", name).read_bytes()


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def run(*, keep: bool = False, data_dir: Path = DEMO_DIR) -> int:
    """Play the scripted day against a fresh local tenant; with ``keep`` both stay up until Ctrl-C."""
    from bot.service.child import ServiceChild, child_env, entra_token
    from emulator.process import LocalTenantProcess  # the bot itself never needs the emulator

    started = time.monotonic()
    data_dir = data_dir.resolve()
    _say("cartif-bot demo — one day of the CARTIF negotiation on a local Microsoft 365 tenant\n")
    tenant = LocalTenantProcess(data_dir / "tenant", seed="cartif", extra=["--ru-per-minute", str(DEMO_RU_PER_MINUTE)])
    info = tenant.start(reset=True)
    tenant_file = tenant.connection_file
    workdir = data_dir / "service"
    if workdir.exists():
        for old in workdir.iterdir():
            if old.is_file():
                old.unlink()
    workdir.mkdir(parents=True, exist_ok=True)
    api_token = secrets.token_urlsafe(24)
    env = child_env(tenant_file, workdir, api_token=api_token, extra={
        "CARTIF_SCHEDULE__INTERVAL_SECONDS": "3600",
        # Cards go out in the cycle that saw the change (production default: a 2-minute digest window).
        "CARTIF_TEAMS__DEBOUNCE_SECONDS": "0"})
    service = ServiceChild(env, workdir)
    actor = _Actor(info)
    try:
        _say(f"  local tenant  {info['graph_url'].rsplit('/', 1)[0]}   connection file {tenant_file}")
        url = service.start().url
        _say(f"  service       cartif-bot run on {url}   (JSON logs: {service.log_path})\n")
        api = service.client()

        _say("08:00  the service starts; its first cycle builds the declared structure")
        first = service.wait_for(lambda: api.get("/api/status").json()["last_cycles"], 900, "the start-up cycle")[-1]
        for line in _step_line(api.get(f"/api/runs/{first['id']}").json()):
            _say(line)

        _say("\n09:10  delegates upload their submissions")
        uploads = {
            f"{WG_FOLDER}/Submissions/KAZ/KAZ proposal on transit guarantees.txt": b"Kazakhstan proposes ...\n",
            f"{WG_FOLDER}/Submissions/PAK/PAK comments on Article 3.txt": b"Pakistan comments ...\n",
            "Countries/UZB/Internal brief - do not circulate.txt": b"Uzbekistan's fallback positions ...\n",
        }
        for path, content in uploads.items():
            actor.upload(path, content)
            _say(f"      uploaded  {path}")

        _say("\n10:00  the secretariat drops the Zero Draft into WG-TF's 'To circulate' folder")
        actor.upload(f"{WG_FOLDER}/To circulate/Draft CARTIF Protocol on Trade Facilitation.docx",
                     _demo_text("zero_draft.docx"))

        _say("\n11:30  someone shares Kazakhstan's private folder by hand")
        link = actor.share("Countries/KAZ")
        _say(f"      sharing link {link.get('link', {}).get('webUrl', '?')}")

        _say("\n12:00  the secretariat triggers a manual sync with its Entra ID token (role Sync.Trigger)")
        anonymous = httpx.post(f"{url}/api/sync", trust_env=False, timeout=30)
        _say(f"      without a token → {anonymous.status_code}")
        with service.client(token=entra_token(info)) as secretariat:
            answer = secretariat.post("/api/sync")
        run_id = answer.json()["run_id"]
        _say(f"      with its token  → {answer.status_code}, run {run_id}")
        manual = service.wait_run(run_id, 600)
        for line in _step_line(manual):
            _say(line)

        _say("\n15:00  the secretariat circulates Rev.1 from the command line")
        rev1_path = f"{WG_FOLDER}/Draft CARTIF Protocol on Trade Facilitation, Rev.1.docx"
        actor.upload(rev1_path, _demo_text("rev1.docx"))
        rev1 = _cli(env, "circulate", rev1_path, "--series", SERIES, "--title",
                    "Draft CARTIF Protocol on Trade Facilitation, Rev.1", "--revises", f"CARTIF/{SERIES}/W/1")
        for line in (rev1.stdout or rev1.stderr).strip().splitlines()[:6]:
            _say(f"      {line}")
        answer = api.post("/api/sync")
        evening = service.wait_run(answer.json()["run_id"], 600)
        _say(f"      the next cycle ({evening['id']}) posts its notice: "
             + "; ".join(f"{s['name']} {s['status']}" for s in evening["steps"]))

        _say("\nWhat happened")
        steps: dict[str, dict[str, Any]] = {s["name"]: s for s in manual["steps"]}
        sync_step = steps.get("sync", {"counts": {}})
        perm_step = steps.get("permissions", {"counts": {}})
        _say(f"  changes seen       {sync_step['counts'].get('changes', 0)} in the manual sync "
             f"({', '.join(f'{k[8:]} {v}' for k, v in sync_step['counts'].items() if k.startswith('changes_'))})")
        counts = perm_step["counts"]
        _say(f"  drift corrected    {counts.get('applied', 0)} of {counts.get('drift', 0)} found"
             f" ({counts.get('failed', 0)} failed, {counts.get('remaining', 0)} left)")
        register = _cli(env, "register", "list")
        _say("  register")
        for line in register.stdout.strip().splitlines():
            _say(f"    {line}")
        _say("  notices posted")
        admin = httpx.Client(base_url=info["admin_url"], trust_env=False, verify=info["ca_path"], timeout=30)
        with admin:
            for channel in sorted(info["teams_webhooks"]):
                view = admin.get(f"/teams/{quote(channel)}").json()
                if view["messages"]:
                    counts = ", ".join(f"{n} {status}" for status, n in sorted(view["counts"].items()))
                    _say(f"    {channel:<18} {len(view['messages'])} card(s) ({counts})")
        _say(f"  Teams page         {info['teams_url']}   (cards rendered by Microsoft's Adaptive Cards renderer)")
        _say(f"\ndone in {time.monotonic() - started:.0f} s.")
        api.close()
        if keep:
            _say("the local tenant and the service keep running; Ctrl-C stops them")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        actor.close()
        code = service.stop()
        _say(f"service stopped with SIGTERM → exit {code}")
        tenant.stop()
    return 0

