"""Run the Okta simulator: in-process (tests mutate the org directly) or as a process (`make up`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

import uvicorn

from kubescim_dev.controlplane import free_port
from kubescim_dev.oktasim.api import Simulator, SimulatorConfig
from kubescim_dev.oktasim.org import Org, generate
from kubescim_dev.oktasim.pusher import OktaPusher


class SimulatorServer:
    """The simulator on a loopback port, served by the current event loop."""

    def __init__(self, org: Org, config: SimulatorConfig | None = None, port: int | None = None) -> None:
        self.simulator = Simulator(org, config)
        self.port = port or free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.simulator.app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
                access_log=False,
            )
        )
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def org(self) -> Org:
        return self.simulator.org

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                await self.task
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def _serve(args: argparse.Namespace) -> None:
    org = generate(args.users, args.groups, seed=args.seed)
    config = SimulatorConfig(link_next_first=args.link_next_first, rate_limit=args.rate_limit)
    if args.public_key:
        config.oauth_public_key_pem = Path(args.public_key).read_text()
    server = SimulatorServer(org, config, args.port)
    await server.start()
    pushed = 0
    if args.push_to:
        # Like an admin's first "Push Now": provision every assigned user and push every group.
        pusher = OktaPusher(org, args.push_to, os.environ["KUBESCIM_PUSH_TOKEN"])
        await pusher.push_everything()
        pushed = pusher.requests
        await pusher.close()
    Path(args.state).write_text(
        json.dumps(
            {
                "url": server.url,
                "apiToken": config.api_token,
                "appId": org.app_id,
                "oauthClientId": config.oauth_client_id,
                "users": len(org.users),
                "groups": len(org.groups),
                "scimRequests": pushed,
            }
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m kubescim_dev.oktasim.server", description=__doc__)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate-limit", type=int, default=600)
    parser.add_argument("--link-next-first", action="store_true")
    parser.add_argument("--public-key", help="PEM public key of the OAuth service app")
    parser.add_argument("--state", required=True, help="where to write the URL, API token and app id (JSON)")
    parser.add_argument("--push-to", help="SCIM base URL to push the org to at start (token in $KUBESCIM_PUSH_TOKEN)")
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
