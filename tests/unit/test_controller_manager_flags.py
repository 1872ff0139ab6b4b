"""`pyk8s controller-manager` flags reach the controllers: client rate limits and sync concurrency."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from pyk8s import cli
from pyk8s.client import APIClient, ClientConfig
from pyk8s.client.informer import SharedInformerFactory
from pyk8s.controllers import manager as manager_module
from pyk8s.controllers.deployment import DeploymentController
from pyk8s.controllers.job import JobController
from pyk8s.controllers.manager import ControllerContext, ControllerManager


def test_flags_are_passed_to_the_controller_manager(monkeypatch, tmp_path: Path):
    seen = {}

    async def fake_run(kubeconfig, controllers, leader_elect, *, options, qps, burst):
        seen.update(options=options, qps=qps, burst=burst)

    monkeypatch.setattr(manager_module, "run_controller_manager", fake_run)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("")
    result = CliRunner().invoke(cli.main, ["controller-manager", "--kubeconfig", str(kubeconfig), "--kube-api-qps",
                                           "200", "--kube-api-burst", "400", "--concurrent-job-syncs", "25"])
    assert result.exit_code == 0, result.output
    assert seen["qps"] == 200 and seen["burst"] == 400
    assert seen["options"]["concurrent_job_syncs"] == 25 and seen["options"]["concurrent_deployment_syncs"] == 5
    rejected = CliRunner().invoke(cli.main, ["controller-manager", "--kubeconfig", str(kubeconfig),
                                             "--concurrent-job-syncs", "0"])
    assert rejected.exit_code == 2 and "--concurrent-job-syncs" in rejected.output


async def test_each_controller_client_inherits_the_rate_limit():
    config = ClientConfig(server="https://127.0.0.1:1", qps=123, burst=7)
    async with APIClient(config) as client:
        manager = ControllerManager(client, controllers="job", leader_elect=False)
        controller_client = manager._client_for("job-controller")
        try:
            assert controller_client.config.qps == 123 and controller_client.config.burst == 7
        finally:
            await controller_client.close()


async def test_sync_concurrency_options_size_the_worker_pools():
    async with APIClient(ClientConfig(server="https://127.0.0.1:1")) as client:
        factory = SharedInformerFactory(client)
        ctx = ControllerContext(client, factory, recorder=None, options={"concurrent_job_syncs": 25,
                                                                          "concurrent_deployment_syncs": 9})
        assert JobController.from_context(ctx).controller.workers == 25
        assert DeploymentController.from_context(ctx).controller.workers == 9
