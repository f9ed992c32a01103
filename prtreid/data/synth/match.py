"""A small football simulation at the frame rate: the world motion of players, referees and ball.

Players hold formation slots that shift with the ball and their team's possession, plus personal
runs that change every few seconds (some of them swap places with a teammate, so teammates cross);
near their own goal, defenders mark attackers goal-side and attackers crowd the box. The ball
carrier dribbles, passes (short on the ground, long in the air) or shoots; the nearest opponent
presses and tackles. Goalkeepers guard their goal, the main referee keeps a diagonal distance to
the ball, assistants run the touchlines level with the offside line. Agents accelerate with limited
force, so paths are smooth.
"""

from __future__ import annotations

import math

import numpy as np

from prtreid.data.synth.motion import BALL_RADIUS, Agent, Kickoff, Motion
from prtreid.data.synth.pitch import HALF_LENGTH, HALF_WIDTH


class Match:
    """Mutable simulation state; :meth:`step` advances it by one frame."""

    def __init__(self, agents: list[Agent], start: Kickoff, dt: float, rng: np.random.Generator) -> None:
        self.agents, self.dt, self.rng = agents, dt, rng
        n = len(agents)
        self.role = np.array([a.role for a in agents])
        self.team = np.array([a.team for a in agents])
        self.detail = [a.detail for a in agents]
        self.slot = np.array([a.slot for a in agents], np.float64)
        self.top = np.array([a.top_speed for a in agents])
        self.side = np.where(self.team == 0, 1.0, -1.0)
        self.field = (self.role == "player") | (self.role == "goalkeeper")
        self.players = self.role == "player"
        self.box_depth = rng.uniform(0.0, 1.0, n)  # where in the box a player makes his run
        self.mark_angle = rng.uniform(-1.4, 1.4, n)  # each marker's own angle off the goal-side line
        self.ball = np.array([start.ball[0], start.ball[1], BALL_RADIUS])
        self.possession = start.team
        self.wander = rng.normal(0, 3.0, (n, 2))
        self.wander_t = rng.uniform(0, 4.0, n)
        self.sprint = np.zeros(n, bool)
        self.ref_angle_home = float(rng.choice([-0.75 * math.pi, 0.25 * math.pi]))
        self.ref_angle = self.ref_angle_home + rng.normal(0, 0.5)
        self.flight: dict | None = None
        self.owner, self.hold = -1, 0.0
        self.dribble = np.array([1.0, 0.0])
        self.pos = np.zeros((n, 2))
        self.pos = self._targets()[0]  # twice: assistants line up with the placed defenders
        self.pos = self._targets()[0] + rng.normal(0, 1.5, (n, 2))
        self.vel = np.zeros((n, 2))
        self.heading = np.tile([1.0, 0.0], (n, 1)) * self.side[:, None]
        self.phase = rng.uniform(0, 2 * math.pi, n)
        self._take(self._nearest(self.ball[:2], self.players & (self.team == start.team)), hold=rng.uniform(1.5, 3.0))
        self.ball[:2] = self.pos[self.owner] + 0.55 * self.heading[self.owner]

    # --- helpers ---------------------------------------------------------------------------

    def _nearest(self, point: np.ndarray, mask: np.ndarray, exclude: int = -1) -> int:
        d = np.linalg.norm(self.pos - point, axis=1)
        d[~mask] = np.inf
        if exclude >= 0:
            d[exclude] = np.inf
        return int(np.argmin(d))

    def _take(self, idx: int, hold: float) -> None:
        self.owner, self.hold, self.flight = idx, hold, None
        self.possession = int(self.team[idx])
        goal_dir = np.array([self.side[idx], self.rng.normal(0, 0.6)])
        self.dribble = goal_dir / np.linalg.norm(goal_dir)

    # --- targets ---------------------------------------------------------------------------

    def _formation(self) -> np.ndarray:
        """Formation targets of all players (rows of non-players are meaningless)."""
        s = self.side
        bx, by = self.ball[0], self.ball[1]
        ball_t = s * bx
        attacking = self.team == self.possession
        depth, lat = self.slot[:, 0], self.slot[:, 1]
        x_t = (-44.5 + 62.0 * depth) * 0.7 + 0.5 * ball_t + np.where(attacking, 6.0, -3.0)
        y = 20.0 * lat + 0.3 * by
        crowd = attacking & (ball_t > 15.0) & (depth > 0.5)  # forwards and wide midfielders attack the box
        x_t = np.where(crowd, np.maximum(x_t, 36.0 + 11.0 * self.box_depth), x_t)
        y = np.where(crowd, 13.0 * lat + 0.2 * by, y)
        return np.stack([s * np.clip(x_t, -50.0, 50.0), np.clip(y, -32.0, 32.0)], axis=1)

    def _targets(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.agents)
        tgt = self._formation() + self.wander
        speed = self.top * np.where(self.sprint, 1.0, 0.6)
        bx, by = self.ball[0], self.ball[1]
        self._mark(tgt)
        for i in range(n):
            role, s = self.role[i], self.side[i]
            if role == "goalkeeper":
                x_t = -51.5 + np.clip(0.12 * (s * bx + HALF_LENGTH), 0.0, 10.0)
                tgt[i] = (s * x_t, np.clip(0.2 * by, -4.0, 4.0))
            elif role == "referee":
                tgt[i] = self._referee_target(i)
                speed[i] = min(speed[i], 6.0)
            elif role != "player":
                tgt[i] = self.pos[i]
        return tgt, speed

    def _mark(self, tgt: np.ndarray) -> None:
        """Defenders pick up the nearest free attacker and stand goal-side of him.

        Near their own goal every defender marks tightly; elsewhere only those near the ball mark,
        more loosely.
        """
        defending = 1 - self.possession
        own_goal = np.array([-HALF_LENGTH if defending == 0 else HALF_LENGTH, 0.0])
        deep = np.linalg.norm(self.ball[:2] - own_goal) < 38.0
        defenders = np.flatnonzero(self.players & (self.team == defending))
        to_ball = np.linalg.norm(self.pos[defenders] - self.ball[:2], axis=1)
        attackers = list(np.flatnonzero(self.players & (self.team == self.possession)))
        for d, near in zip(defenders[np.argsort(to_ball)], np.sort(to_ball)):
            if not attackers or (not deep and near > 22.0):
                break
            dist = np.linalg.norm(self.pos[attackers] - tgt[d], axis=1)
            k = int(np.argmin(dist))
            if dist[k] > 14.0:
                continue
            a = attackers.pop(k)
            goal_side = own_goal - self.pos[a]
            goal_side /= max(np.linalg.norm(goal_side), 1e-6)
            c, s = math.cos(self.mark_angle[d]), math.sin(self.mark_angle[d])
            side_on = np.array([c * goal_side[0] - s * goal_side[1], s * goal_side[0] + c * goal_side[1]])
            tgt[d] = self.pos[a] + (1.3 if deep else 2.2) * side_on

    def _referee_target(self, i: int) -> tuple[float, float]:
        detail = self.detail[i]
        if detail == "main":
            r = 9.0
            x = self.ball[0] + r * math.cos(self.ref_angle)
            y = self.ball[1] + r * math.sin(self.ref_angle)
            return (float(np.clip(x, -48, 48)), float(np.clip(y, -30, 30)))
        top = detail == "side top"
        team = 1 if top else 0  # the team defending the half this assistant runs
        xs = np.sort(self.pos[(self.team == team) & self.field, 0])
        line = xs[-2] if top else xs[1]
        x = max(line, self.ball[0]) if top else min(line, self.ball[0])
        x = float(np.clip(x, 0.0, 51.0) if top else np.clip(x, -51.0, 0.0))
        return (x, HALF_WIDTH + 0.8 if top else -HALF_WIDTH - 0.8)

    def _play_targets(self, tgt: np.ndarray, speed: np.ndarray) -> None:
        """Overrides near the ball: carrier dribbles, opponents press, receivers run to the ball."""
        ball = self.ball[:2]
        if self.owner >= 0:
            o = self.owner
            if self.role[o] == "goalkeeper":
                tgt[o] = self.pos[o]
            else:
                tgt[o] = np.clip(self.pos[o] + 8.0 * self.dribble, [-50, -32], [50, 32])
                speed[o] = 0.75 * self.top[o]
            opp = self.players & (self.team == 1 - self.team[o])
            p1 = self._nearest(ball, opp)
            tgt[p1], speed[p1] = ball + 0.4 * self.vel[o], self.top[p1] * 0.9
            p2 = self._nearest(ball, opp, exclude=p1)
            own_goal = np.array([-self.side[p2] * HALF_LENGTH, 0.0])
            tgt[p2] = 0.5 * (ball + own_goal)
        else:
            land = self.flight["end"] if self.flight is not None else ball
            for team in (0, 1):
                k = self._nearest(land, self.field & (self.team == team))
                if self.role[k] == "goalkeeper" and np.linalg.norm(land - self.pos[k]) > 8.0:
                    continue
                tgt[k], speed[k] = land, self.top[k]
            if self.flight is not None and self.flight["receiver"] >= 0:
                r = self.flight["receiver"]
                tgt[r], speed[r] = self.flight["end"], self.top[r]

    # --- dynamics --------------------------------------------------------------------------

    def step(self) -> None:
        """Advance players, referees and ball by one frame."""
        self._new_runs()
        self.ref_angle += self.rng.normal(0, 0.05) + 0.02 * math.sin(2 * (self.ref_angle_home - self.ref_angle))
        tgt, speed = self._targets()
        self._play_targets(tgt, speed)
        self._move(tgt, speed)
        self._update_ball()

    def _new_runs(self) -> None:
        """Redraw personal runs whose time is up; some runs take a nearby teammate's place."""
        rng = self.rng
        self.wander_t -= self.dt
        due = np.flatnonzero(self.wander_t <= 0)
        if not len(due):
            return
        formation = self._formation()
        for i in due:
            run = rng.random() < 0.3
            self.sprint[i] = run
            self.wander[i] = rng.normal(0, 9.0 if run else 3.5, 2) + (self.side[i] * 6.0 * run, 0.0)
            mates = np.flatnonzero(self.players & (self.team == self.team[i]))
            mates = mates[(mates != i) & (np.linalg.norm(formation[mates] - formation[i], axis=1) < 20.0)]
            if self.players[i] and len(mates) and rng.random() < 0.35:
                j = int(rng.choice(mates))
                self.wander[i] = formation[j] - formation[i] + rng.normal(0, 1.5, 2)
                self.sprint[i] = True
            self.wander_t[i] = rng.uniform(1.5, 3.5) if self.sprint[i] else rng.uniform(2.5, 6.0)

    def _move(self, tgt: np.ndarray, vmax: np.ndarray) -> None:
        delta = tgt - self.pos
        dist = np.linalg.norm(delta, axis=1, keepdims=True)
        want = delta / np.maximum(dist, 1e-6) * np.minimum(vmax[:, None], 1.1 * dist)
        diff = self.pos[:, None, :] - self.pos[None, :, :]
        gap = np.linalg.norm(diff, axis=2) + np.eye(len(self.pos)) * 1e3
        push = (diff / gap[..., None] * np.clip(0.8 - gap, 0, None)[..., None]).sum(axis=1)
        want += 3.0 * push
        dv = want - self.vel
        acc = np.linalg.norm(dv, axis=1, keepdims=True)
        limit = 5.0 * self.dt
        self.vel += dv * np.minimum(1.0, limit / np.maximum(acc, 1e-9))
        self.pos += self.vel * self.dt
        speed = np.linalg.norm(self.vel, axis=1)
        moving = speed > 0.6
        new_h = np.where(moving[:, None], self.vel / np.maximum(speed, 1e-6)[:, None], self.ball[:2] - self.pos)
        new_h /= np.maximum(np.linalg.norm(new_h, axis=1, keepdims=True), 1e-6)
        h = self.heading + np.where(moving, 0.3, 0.06)[:, None] * (new_h - self.heading)
        self.heading = h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-6)
        self.phase += 2 * math.pi * speed * self.dt / (1.4 + 0.25 * speed)

    def _update_ball(self) -> None:
        if self.flight is not None:
            self._fly()
        elif self.owner >= 0:
            o = self.owner
            want = self.pos[o] + 0.55 * self.heading[o]
            self.ball[:2] += 0.4 * (want - self.ball[:2])
            self.ball[2] = BALL_RADIUS
            self._contest(o)
            self.hold -= self.dt
            if self.owner == o and self.hold <= 0:
                self._kick(o)
        else:
            k = self._nearest(self.ball[:2], self.field)
            if np.linalg.norm(self.pos[k] - self.ball[:2]) < 1.0:
                self._take(k, self.rng.uniform(0.6, 2.5))

    def _contest(self, o: int) -> None:
        opp = self.players & (self.team == 1 - self.team[o])
        k = self._nearest(self.ball[:2], opp)
        if np.linalg.norm(self.pos[k] - self.ball[:2]) < 1.0 and self.rng.random() < 1.2 * self.dt:
            self._take(k, self.rng.uniform(0.6, 2.0))

    def _kick(self, o: int) -> None:
        rng, s = self.rng, self.side[o]
        start = self.ball.copy()
        if self.role[o] == "player" and s * self.pos[o, 0] > 27.0 and rng.random() < 0.35:
            keeper = int(np.flatnonzero((self.role == "goalkeeper") & (self.team == 1 - self.team[o]))[0])
            end = self.pos[keeper] + rng.normal(0, 0.8, 2)
            speed, apex, receiver = rng.uniform(20, 28), rng.uniform(0, 1.5), keeper
        else:
            mates = np.flatnonzero(self.field & (self.team == self.team[o]))
            mates = mates[mates != o]
            d = np.linalg.norm(self.pos[mates] - self.pos[o], axis=1)
            forward = s * (self.pos[mates, 0] - self.pos[o, 0])
            long_ball = rng.random() < 0.15 or self.role[o] == "goalkeeper"
            w = np.exp(-d / 15.0) * (1.0 + 0.5 * (forward > 0)) * (self.role[mates] == "player") + 1e-9
            if long_ball:
                w = (d > 25.0) * (1.0 + (forward > 0)) + 1e-6
            receiver = int(rng.choice(mates, p=w / w.sum()))
            dist = float(np.linalg.norm(self.pos[receiver] - self.pos[o]))
            lofted = long_ball or dist > 30.0
            speed = rng.uniform(17, 22) if lofted else rng.uniform(11, 17)
            apex = float(np.clip(0.18 * dist, 2.0, 12.0)) if lofted else 0.0
            end = self.pos[receiver] + self.vel[receiver] * 0.5 * dist / speed
        end = np.clip(end, [-51.0, -33.0], [51.0, 33.0])
        duration = max(0.3, float(np.linalg.norm(end - start[:2])) / speed)
        self.flight = {"start": start, "end": end, "t": 0.0, "dur": duration, "apex": apex,
                       "ground": apex == 0.0, "receiver": receiver}
        self.owner = -1

    def _fly(self) -> None:
        f = self.flight
        f["t"] += self.dt
        tau = min(1.0, f["t"] / f["dur"])
        g = tau * (1.3 - 0.3 * tau) if f["ground"] else tau
        self.ball[:2] = f["start"][:2] + g * (f["end"] - f["start"][:2])
        self.ball[2] = BALL_RADIUS + f["apex"] * 4.0 * tau * (1.0 - tau)
        if tau < 1.0:
            return
        k = self._nearest(self.ball[:2], self.field)
        if np.linalg.norm(self.pos[k] - self.ball[:2]) < 2.5:
            self._take(k, self.rng.uniform(0.8, 2.5) if self.role[k] == "player" else self.rng.uniform(1.5, 3.0))
        else:
            self.flight = None


def simulate(agents: list[Agent], frames: int, fps: float, start: Kickoff, rng: np.random.Generator,
             warmup_s: float = 1.0) -> Motion:
    """Run the match for ``frames`` frames after a warm-up; all arrays are indexed [frame, agent]."""
    match = Match(agents, start, 1.0 / fps, rng)
    match.hold += warmup_s
    for _ in range(int(warmup_s * fps)):
        match.step()
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("pos", "vel", "heading", "phase", "ball")}
    for _ in range(frames):
        match.step()
        for k in out:
            out[k].append(np.array(getattr(match, k), np.float64, copy=True))
    return Motion(**{k: np.stack(v) for k, v in out.items()})
