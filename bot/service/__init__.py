"""``cartif-bot run``: the bot as a long-running service.

Modules, in the order a cycle meets them:

* ``serving``     wiring: settings → store, leadership, runner, HTTP server; signals
* ``scheduling``  interval or cron (pure)
* ``running``     the cycle runner: one cycle at a time, one queued follow-up, clean stop
* ``steps``       the cycle's steps behind the ``CycleStep`` protocol (sync, permissions, …)
* ``api``         the HTTP surface (notifications, /api, health, metrics)
* ``authn``       who may trigger: static token or Entra ID token with an app role
* ``leading``     leader election: PostgreSQL advisory lock, or a file lock for SQLite
* ``metrics``     Prometheus series
* ``logs``        text/JSON logs with run ids, secrets redacted
* ``remote``      ``cartif-bot sync --remote``: trigger a running service and follow the run
* ``child``       ``cartif-bot run`` as a child process (the demo and the service tests start it so)
"""

from bot.service.running import CycleRunner, Run
from bot.service.scheduling import CronExpression, Schedule
from bot.service.steps import CycleContext, CycleStep, StepResult, build_steps

__all__ = ["CronExpression", "CycleContext", "CycleRunner", "CycleStep", "Run", "Schedule", "StepResult",
           "build_steps"]
