"""BabyAI in text: the four tasks of paper 003 (appendix A.9.2) on ``minigrid``.

The paper used BALROG's BabyAI, which builds babyai-text's ``BabyAI-MixedTrainLocal-v0``
(Carta et al., 2023) over and over until the level's mission kind is the named
one (``goto``, ``pickup``, ``open``, ``pick_up_seq_go_to``), and describes the 7x7
egocentric view in sentences such as "a wall 3 steps forward".

``minigrid`` 3.2 has no MixedTrainLocal, and its nearest named levels differ
from it in ways that change the task: ``BabyAI-Open-v0`` is a 3x3 maze of rooms
with unlocked doors, and no level asks "pick up A, then go to B". So
``MixedTrainLocalTask`` rebuilds each mission kind of MixedTrainLocal on
minigrid's level API (``RoomGridLevel`` with minigrid's own instruction
verifiers, hence minigrid's reward ``1 - 0.9 * steps / max_steps``):

* ``goto`` / ``pickup``: one 8x8 room, 9 random keys, balls and boxes; the
  mission names one of them by colour and type.
* ``pick_up_seq_go_to``: one 8x8 room, 10 objects; "pick up A, then go to B" or
  "go to B after you pick up A" (B may look like A only if two such objects exist).
* ``open``: two 8x8 rooms joined by a locked yellow, green, blue or purple
  door, its key and 8 other objects in the agent's room; "open the door" or
  "open the <colour> door" (so the agent must fetch the key first).
* Missions naming a yellow box, red key, green ball, red door or grey door are
  resampled, as MixedTrainLocal holds them out for its test split.

Episodes are cut at 16 steps (``goto``, ``pickup``) and 32 (``pick_up_seq_go_to``,
``open``), as in the paper. Actions are the letters A-F of the paper's Figure A.6
prompt, in minigrid's order (left, right, forward, pickup, drop, toggle).
"""

from __future__ import annotations

import string
from collections.abc import Mapping

import gymnasium
import numpy as np
from gymnasium import spaces
from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT, OBJECT_TO_IDX, STATE_TO_IDX
from minigrid.core.roomgrid import RoomGrid
from minigrid.envs.babyai.core.roomgrid_level import RejectSampling, RoomGridLevel
from minigrid.envs.babyai.core.verifier import (
    AfterInstr,
    BeforeInstr,
    GoToInstr,
    ObjDesc,
    OpenInstr,
    PickupInstr,
)

# Episode limit per task (paper 003, appendix A.9.2).
TASKS: dict[str, int] = {"goto": 16, "pickup": 16, "pick_up_seq_go_to": 32, "open": 32}

# (letter, description) in minigrid action order, as in the paper's Figure A.6 prompt.
ACTIONS: tuple[tuple[str, str], ...] = (
    ("A", "turn to the left"),
    ("B", "turn to the right"),
    ("C", "take one step forward"),
    ("D", "pick up the object one step in front of you"),
    ("E", "drop the object that you are holding"),
    ("F", "manipulate the object in front of you"),
)
LETTER_TO_ACTION: dict[str, int] = {letter: i for i, (letter, _) in enumerate(ACTIONS)}

# Mission phrases MixedTrainLocal keeps for its test split.
HELD_OUT = ("yellow box", "red key", "red door", "green ball", "grey door")
OPEN_DOOR_COLORS = ("yellow", "green", "blue", "purple")
ROOM_SIZE = 8
NUM_DISTRACTORS = 8

# The agent's cell in minigrid's egocentric view: bottom middle, facing up.
VIEW_SIZE = 7
AGENT_X, AGENT_Y = VIEW_SIZE // 2, VIEW_SIZE - 1
_IDX_TO_STATE = {i: s for s, i in STATE_TO_IDX.items()}
# Cells that are not worth a sentence; walls get their own nearest-wall sentences.
_SILENT = {OBJECT_TO_IDX[t] for t in ("unseen", "empty", "floor", "agent")}
_WALL = OBJECT_TO_IDX["wall"]

# Symbolic mission encoding: kind one-hot, then one slot per target (in the order
# the mission must be done) holding a type one-hot and a colour one-hot.
_MISSION_TYPES = ("key", "ball", "box", "door")
_MISSION_COLORS = tuple(IDX_TO_COLOR[i] for i in sorted(IDX_TO_COLOR))
_TARGET_SLOTS = 2
_SLOT_SIZE = len(_MISSION_TYPES) + len(_MISSION_COLORS)
_CELL_SIZE = len(IDX_TO_OBJECT) + len(IDX_TO_COLOR) + len(STATE_TO_IDX)
SYMBOLIC_SIZE = VIEW_SIZE * VIEW_SIZE * _CELL_SIZE + 4 + len(TASKS) + _TARGET_SLOTS * _SLOT_SIZE


class MixedTrainLocalTask(RoomGridLevel):
    """One mission kind of babyai-text's MixedTrainLocal level, on minigrid's level API."""

    def __init__(self, task: str, max_steps: int | None = None, **kwargs):
        _check_task(task)
        self.task = task
        super().__init__(
            room_size=ROOM_SIZE,
            num_rows=1,
            num_cols=2 if task == "open" else 1,
            max_steps=TASKS[task] if max_steps is None else max_steps,
            **kwargs,
        )

    def _gen_grid(self, width: int, height: int) -> None:
        # RoomGridLevel's loop does the same, plus checks for PutNext and unblocking missions that
        # these never are, but prints every rejected sample.
        while True:
            RoomGrid._gen_grid(self, width, height)
            try:
                self.gen_mission()
                break
            except RejectSampling:
                continue
        self.surface = self.instrs.surface(self)
        self.mission = self.surface

    def gen_mission(self) -> None:
        """Places the objects and the agent and sets ``instrs``, the mission of this task kind.

        Raises ``RejectSampling`` (and the grid is drawn again) when an object is out of the agent's
        reach or the mission names a held-out phrase (``HELD_OUT``).
        """
        if self.task == "open":
            self.instrs = self._open_mission()
        else:
            self.place_agent()
            extra = 2 if self.task == "pick_up_seq_go_to" else 1
            objs = self.add_distractors(num_distractors=NUM_DISTRACTORS + extra, all_unique=False)
            self.check_objs_reachable()
            self.instrs = self._object_mission(objs)
        if any(phrase in self.instrs.surface(self) for phrase in HELD_OUT):
            raise RejectSampling("mission held out for the test split")

    def _object_mission(self, objs: list) -> GoToInstr | PickupInstr | BeforeInstr | AfterInstr:
        target = self._rand_elem(objs)
        desc = ObjDesc(target.type, target.color)
        if self.task == "goto":
            return GoToInstr(desc)
        if self.task == "pickup":
            return PickupInstr(desc)
        # "Go to B" may name A's look only if another such object remains after A is picked up.
        look = (target.type, target.color)
        twins = sum((o.type, o.color) == look for o in objs)
        goal = self._rand_elem(objs)
        while twins < 2 and (goal.type, goal.color) == look:
            goal = self._rand_elem(objs)
        pick, go = PickupInstr(desc), GoToInstr(ObjDesc(goal.type, goal.color))
        return BeforeInstr(pick, go) if self._rand_bool() else AfterInstr(go, pick)

    def _open_mission(self) -> OpenInstr:
        locked = self._rand_int(0, 2)
        free = 1 - locked
        color = self._rand_elem(OPEN_DOOR_COLORS)
        # Door index 0 is a room's right wall and 2 its left wall: the wall between the two rooms.
        self.add_door(locked, 0, door_idx=0 if locked == 0 else 2, color=color, locked=True)
        self.add_object(free, 0, "key", color)
        self.add_distractors(free, 0, num_distractors=NUM_DISTRACTORS, all_unique=False)
        self.place_agent(free, 0)
        self.check_objs_reachable()
        return OpenInstr(ObjDesc("door", self._rand_elem([None, color])))


class BabyAITextEnv(gymnasium.Wrapper):
    """A BabyAI task with text observations and letter actions A-F.

    Observation: ``{"text": "Your goal: <mission>" and one line per sentence of
    ``describe``, "mission": str, "image": minigrid's 7x7x3 view, "symbolic": float32
    [SYMBOLIC_SIZE] (one-hot view cells, direction, mission kind and targets)}``.
    ``step`` takes a letter or a minigrid action index 0-5; ``info["success"]`` is
    True on success. A terminal step is never also reported as truncated.
    """

    def __init__(self, task: str = "goto", max_steps: int | None = None, render_mode: str | None = None):
        super().__init__(MixedTrainLocalTask(task, max_steps=max_steps, render_mode=render_mode))
        self.task = task
        self.action_space = spaces.Discrete(len(ACTIONS))
        text = spaces.Text(max_length=4096, charset=string.printable)
        self.observation_space = spaces.Dict(
            {
                "text": text,
                "mission": text,
                "image": self.env.observation_space["image"],
                "symbolic": spaces.Box(0.0, 1.0, shape=(SYMBOLIC_SIZE,), dtype=np.float32),
            }
        )
        self._mission_code = np.zeros(0, dtype=np.float32)

    @property
    def max_steps(self) -> int:
        """The episode limit: ``TASKS[task]`` unless ``max_steps`` was given."""
        return self.env.unwrapped.max_steps

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Draws a new room and mission from ``seed``; returns the observation and ``info`` (``success`` False)."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._mission_code = _mission_code(self.task, self.env.unwrapped.instrs)
        return self._observation(obs), {**info, "success": False}

    def step(self, action: int | str) -> tuple[dict, float, bool, bool, dict]:
        """Takes a letter A-F or a minigrid action index 0-5 (ValueError otherwise); returns the gymnasium
        5-tuple, ``info["success"]`` True when the mission is done (a terminal step with positive reward).
        """
        obs, reward, terminated, truncated, info = self.env.step(action_index(action))
        info = {**info, "success": bool(terminated and reward > 0)}
        return self._observation(obs), float(reward), terminated, truncated and not terminated, info

    def _observation(self, obs: Mapping) -> dict:
        direction = np.zeros(4, dtype=np.float32)
        direction[obs["direction"]] = 1.0
        symbolic = np.concatenate([_one_hot_view(obs["image"]), direction, self._mission_code])
        return {
            "text": f"Your goal: {obs['mission']}\n{describe(obs)}",
            "mission": obs["mission"],
            "image": obs["image"],
            "symbolic": symbolic,
        }


def action_index(action: int | str) -> int:
    """Minigrid action index of a letter ``"A"``-``"F"`` (or of an index 0-5, checked)."""
    if isinstance(action, str):
        if action.strip().upper() not in LETTER_TO_ACTION:
            raise ValueError(f"action {action!r} is not one of the letters {', '.join(LETTER_TO_ACTION)}")
        return LETTER_TO_ACTION[action.strip().upper()]
    if not 0 <= int(action) < len(ACTIONS):
        raise ValueError(f"action {action!r} is not an index 0..{len(ACTIONS) - 1}")
    return int(action)


def describe(obs: Mapping) -> str:
    """The agent's view ``obs["image"]`` (minigrid encoding) as sentences, one per line."""
    return "\n".join(view_sentences(obs["image"]))


def view_sentences(image: np.ndarray) -> list[str]:
    """What the agent carries, the nearest wall forward, left and right, and every visible object.

    ``image[x, y]`` is minigrid's egocentric view: the agent stands at (3, 6) facing
    -y, so x < 3 is to its left and smaller y is further forward. Walls are reported
    only where nothing stands between them and the agent (as babyai-text does), so
    the text stays short.
    """
    image = np.asarray(image)
    sentences = []
    carried = image[AGENT_X, AGENT_Y]
    if carried[0] not in _SILENT:
        sentences.append(f"You carry {_article(_name(carried))}.")
    for label, cells in (
        ("forward", [(AGENT_X, y) for y in range(AGENT_Y - 1, -1, -1)]),
        ("left", [(x, AGENT_Y) for x in range(AGENT_X - 1, -1, -1)]),
        ("right", [(x, AGENT_Y) for x in range(AGENT_X + 1, VIEW_SIZE)]),
    ):
        distance = _nearest_wall(image, cells)
        if distance:
            sentences.append(f"a wall {_steps(distance)} {label}")
    for x in range(VIEW_SIZE):
        for y in range(VIEW_SIZE):
            cell = image[x, y]
            if (x, y) != (AGENT_X, AGENT_Y) and cell[0] not in _SILENT and cell[0] != _WALL:
                sentences.append(f"{_article(_name(cell))} {_offset(x, y)}")
    return sentences


def _nearest_wall(image: np.ndarray, cells: list[tuple[int, int]]) -> int:
    """Distance to the first non-empty cell along ``cells`` if it is a wall, else 0."""
    for distance, (x, y) in enumerate(cells, start=1):
        kind = image[x, y, 0]
        if kind == _WALL:
            return distance
        if kind not in _SILENT:
            return 0
    return 0


def _name(cell: np.ndarray) -> str:
    kind, color = IDX_TO_OBJECT[int(cell[0])], IDX_TO_COLOR[int(cell[1])]
    if kind == "door":
        return f"{_IDX_TO_STATE[int(cell[2])]} {color} door"
    return f"{color} {kind}"


def _article(name: str) -> str:
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def _offset(x: int, y: int) -> str:
    sideways = x - AGENT_X
    side = f"{_steps(abs(sideways))} {'right' if sideways > 0 else 'left'}" if sideways else ""
    forward = f"{_steps(AGENT_Y - y)} forward" if y != AGENT_Y else ""
    return " and ".join(part for part in (side, forward) if part)


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def _one_hot_view(image: np.ndarray) -> np.ndarray:
    """[7 * 7 * 20] one-hot of each cell's type, colour and state."""
    sizes = (len(IDX_TO_OBJECT), len(IDX_TO_COLOR), len(STATE_TO_IDX))
    parts = [np.eye(size, dtype=np.float32)[image[..., c]] for c, size in enumerate(sizes)]
    return np.concatenate(parts, axis=-1).reshape(-1)


def _mission_code(task: str, instrs) -> np.ndarray:
    """Mission kind one-hot, then type and colour one-hots of each target in the order they are due."""
    if isinstance(instrs, BeforeInstr):
        targets = [instrs.instr_a.desc, instrs.instr_b.desc]
    elif isinstance(instrs, AfterInstr):
        targets = [instrs.instr_b.desc, instrs.instr_a.desc]
    else:
        targets = [instrs.desc]
    code = np.zeros(len(TASKS) + _TARGET_SLOTS * _SLOT_SIZE, dtype=np.float32)
    code[list(TASKS).index(task)] = 1.0
    for slot, desc in enumerate(targets):
        base = len(TASKS) + slot * _SLOT_SIZE
        code[base + _MISSION_TYPES.index(desc.type)] = 1.0
        if desc.color is not None:  # "open the door" names no colour
            code[base + len(_MISSION_TYPES) + _MISSION_COLORS.index(desc.color)] = 1.0
    return code


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown BabyAI task {task!r}; known tasks: {', '.join(TASKS)}")
