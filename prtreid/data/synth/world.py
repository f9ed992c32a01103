"""The cast of a match: who is on the pitch, how each person looks and what their labels are."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prtreid.data.synth.camera import Camera
from prtreid.data.synth.kits import MatchKits, other_kit, sample_look, sample_match_kits
from prtreid.data.synth.motion import Agent, formation_slots
from prtreid.data.synth.pitch import HALF_LENGTH, HALF_WIDTH
from prtreid.data.synth.render import Person
from prtreid.data.types import TEAMS

REFEREE_POSTS: tuple[str, ...] = ("main", "side top", "side bottom")
OTHER_KINDS: tuple[str, ...] = ("ball boy", "staff", "steward", "photographer")


@dataclass(frozen=True)
class Label:
    """Identity labels of one agent, as they go to ``gameinfo.ini``."""

    role: str
    team: str | None = None
    jersey: str | None = None
    detail: str | None = None


@dataclass
class Cast:
    """Agents (for the simulation), their looks (for rendering) and labels, index-aligned."""

    agents: list[Agent]
    people: list[Person]
    labels: list[Label]
    kits: MatchKits


def build_cast(rng: np.random.Generator, players_per_team: int, referees: int, close_kits_prob: float,
               unknown_jersey_prob: float) -> Cast:
    """Two teams (outfield players and a goalkeeper each) and up to three referees."""
    kits = sample_match_kits(rng, close_kits_prob)
    cast = Cast([], [], [], kits)
    for team in (0, 1):
        numbers = rng.permutation(np.arange(2, 100))[:players_per_team]
        keeper_choices = [n for n in (1, 12, 13, 16, 23, 25, 30, 31, 40, 99) if n not in set(numbers.tolist())]
        keeper_no = int(rng.choice(keeper_choices)) if rng.random() < 0.3 else 1
        for slot, number in zip(formation_slots(players_per_team, rng), numbers.tolist()):
            agent = Agent("player", team, None, slot, float(rng.uniform(7.0, 8.7)))
            _add(cast, agent, Person(sample_look(rng), kits.teams[team], str(number)),
                 _jersey_label("player", team, number, rng, unknown_jersey_prob))
        agent = Agent("goalkeeper", team, None, (0.0, 0.0), float(rng.uniform(6.5, 7.5)))
        _add(cast, agent, Person(sample_look(rng, 1.89), kits.goalkeepers[team], str(keeper_no), arms_out=0.03),
             _jersey_label("goalkeeper", team, keeper_no, rng, unknown_jersey_prob))
    for post in REFEREE_POSTS[:referees]:
        agent = Agent("referee", -1, post, (0.0, 0.0), float(rng.uniform(6.0, 7.0)))
        _add(cast, agent, Person(sample_look(rng, 1.80), kits.referee, None), Label("referee", detail=post))
    return cast


def _add(cast: Cast, agent: Agent, person: Person, label: Label) -> None:
    cast.agents.append(agent)
    cast.people.append(person)
    cast.labels.append(label)


def _jersey_label(role: str, team: int, number: int, rng: np.random.Generator, unknown: float) -> Label:
    jersey = "X" if rng.random() < unknown else str(number)
    return Label(role, TEAMS[team], jersey)


def add_others(cast: Cast, cam0: Camera, count: int, rng: np.random.Generator) -> np.ndarray:
    """Add ``count`` people near the touchlines or behind a goal; returns their homes (count, 2).

    The first one stands where the opening frame shows the ground outside the pitch when it does,
    so a clip asked to contain others does contain them.
    """
    homes = []
    for k in range(count):
        home = _home_in_view(cam0, rng) if k == 0 else None
        if home is None:
            home = _random_home(rng)
        homes.append(home)
        kind = str(rng.choice(OTHER_KINDS))
        _add(cast, Agent("other", -1, kind, (0.0, 0.0), 2.0),
             Person(sample_look(rng, 1.76), other_kit(rng), None), Label("other", detail=None))
    return np.asarray(homes, np.float64).reshape(-1, 2)


def _random_home(rng: np.random.Generator) -> tuple[float, float]:
    where = rng.integers(3)
    if where == 0:  # far touchline, in front of the boards
        return (float(rng.uniform(-50, 50)), float(rng.uniform(HALF_WIDTH + 1.2, HALF_WIDTH + 2.8)))
    if where == 1:  # near touchline, technical area
        return (float(rng.uniform(-16, 16)), float(-HALF_WIDTH - rng.uniform(1.5, 3.5)))
    side = 1.0 if rng.random() < 0.5 else -1.0  # behind a goal line
    return (float(side * (HALF_LENGTH + rng.uniform(1.5, 3.0))), float(rng.uniform(-25, 25)))


def _home_in_view(cam: Camera, rng: np.random.Generator) -> tuple[float, float] | None:
    """A random off-pitch spot (beside a touchline or behind a goal line) where a person shows fully."""
    u, v = np.meshgrid(np.linspace(0.06, 0.94, 32) * cam.width, np.linspace(0.2, 0.97, 24) * cam.height)
    to_ground = np.linalg.inv(cam.plane_homography(np.zeros(3), np.array([1.0, 0, 0]), np.array([0, 1.0, 0])))
    g = np.c_[u.ravel(), v.ravel(), np.ones(u.size)] @ to_ground.T
    g = g[:, :2] / g[:, 2:3]
    ax, ay = np.abs(g[:, 0]), np.abs(g[:, 1])
    beside = (ay > HALF_WIDTH + 1.2) & (ay < HALF_WIDTH + 2.8) & (ax < HALF_LENGTH + 3.0)
    behind = (ax > HALF_LENGTH + 1.5) & (ax < HALF_LENGTH + 3.5) & (ay < HALF_WIDTH - 2.0) & (ay > 6.0)
    cand = g[beside | behind]
    if not len(cand):
        return None
    heads, depth = cam.project(np.c_[cand, np.full(len(cand), 1.9)])
    ok = (depth > 2) & (heads[:, 1] > 0.02 * cam.height)
    if not ok.any():
        return None
    x, y = cand[int(rng.choice(np.flatnonzero(ok)))]
    return (float(x), float(y))
