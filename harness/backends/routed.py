"""A backend that sends each request down one of several routes: LMS's language-pair modules, LANDeRMT's
neuron gates, relay's compositions, a composite method's partner models.

Subclasses say which route a request takes (`route_of(request) -> key`, any hashable) and how a route is served
(`generate_route(key, requests, progress)`); by default that is `activate(key)` then the next class's `generate`
(e.g. `HFBackend.generate` with the route's weights switched on). `generate` groups the requests by route (routes
never mix inside a batch), generates each group, returns the outputs in the caller's order, and always resets
the route afterwards (`reset()`, also when generation fails), so a later call starts from the default route.
"""

from __future__ import annotations

from collections.abc import Hashable

from harness.backends.base import Generation, Request


class RoutedBackend:
    """Mixin base: put it before the backend that serves a route, e.g. `class LMSBackend(RoutedBackend,
    HFBackend)`, or use it alone with `generate_route` overridden (relay: one backend per route)."""

    def route_of(self, request: Request) -> Hashable:
        raise NotImplementedError

    def activate(self, key: Hashable) -> None:
        """Switch the model to route `key` (default: nothing to switch)."""

    def reset(self) -> None:
        """Back to the default route after a call (default: nothing to reset)."""

    def generate_route(self, key: Hashable, requests: list[Request], progress=None) -> list[Generation]:
        self.activate(key)
        return super().generate(requests, progress)

    def generate(self, requests: list[Request], progress=None) -> list[Generation]:
        groups: dict[Hashable, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(self.route_of(req), []).append(i)
        out: list[Generation | None] = [None] * len(requests)
        try:
            for key, idx in groups.items():
                for i, g in zip(idx, self.generate_route(key, [requests[i] for i in idx], progress)):
                    out[i] = g
        finally:
            self.reset()
        return out
