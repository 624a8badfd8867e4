"""Prompts of the LLM policy and the reflector (paper 003, appendix A.9), for the text envs.

A ``TextTask`` says how to talk about one env: the action letters and what each
does, the policy's system prompt, how an observation (plus, after an in-context
update, the reflector's feedback) becomes the user prompt, and the reflector's
prompts. Actions are single letters so that every action's probability is one
next-token probability, unbiased by the length of its description (the paper
does this for BabyAI; we do it for Key-Door too).
"""

from __future__ import annotations

from dataclasses import dataclass

KEYDOOR_SYSTEM = (
    "You are a helpful navigation agent. Please thoroughly review your goal, the available actions, objects "
    "around you, and any advice from experts, if available, and respond with the letter of your action only."
)
KEYDOOR_REFLECTOR_SYSTEM = (
    "I will provide you with a trajectory starting from step 0 and the state at step 0.\n"
    "Firstly, you have to analyze the task, the goal, and the current state, generate a rough plan.\n"
    "Then, based on this trajectory, you need to evaluate whether the decision you made at step 0 was correct.\n"
    "Additionally, if given another opportunity, how would you modify it, if needed?\n"
    "Provide concise verbal feedback as a guideline for others new to this task and facing the same state in "
    "the future.\n"
    'If the policy is generally correct, you can reply with "No modifications needed."\n'
    "After providing your explanation, output your final feedback by strictly following this format: "
    '"Verbal Feedback: [your_answer]"'
)
BABYAI_SYSTEM = (
    "You are an agent playing a simple navigation game. Your goal is to {mission}.\n"
    "The following are the possible actions you can take in the game, followed by a short description of each "
    "action:\n{actions}\n"
    "In a moment I will present you an observation. Tips:\n"
    "- Once the desired object you want to interact or pickup in front of you, you can use the 'toggle' action to "
    "interact with it.\n"
    "- It doesn't make sense to repeat the same action over and over if the observation doesn't change.\n"
    "- answer the alphanumerical action, not the description.\n"
    "PLAY!"
)
BABYAI_USER = (
    "Current Observation:\n{observation}\n"
    "You always have to output one of the above actions at a time and no other text. You always have to output "
    "an action until the episode terminates."
)
BABYAI_REFLECTOR_USER = (
    "You are a coach that can provide feedback to the agent.\n"
    "I will provide you the observation at time step t and the action taken by the agent at time step t.\n"
    "Then I will provide you the trajectory after that.\n"
    "Your task is to carefully analyze the trajectory and reflect on the agent's decision at time step t.\n"
    "If the agent were to face the same situation again (observation at time step t), what advice would you give "
    "to better achieve the goal?\n"
    "Provide your feedback as a concise and informative string.\n\n"
    "The observation at time step t is: {obs}\n"
    "The action taken by the agent at time step t is: {action}\n"
    "The trajectory after that is: {trajectory}\n\n"
    "Provide a concise, specific verbal feedback that can help the agent improve its performance when it "
    "encounters state t again to help it achieve the goal.\n"
    "Briefly analyze the agent's decision at time step t and the consequences of the action then provide the "
    "feedback.\n\n"
    "You should always follow the format:\n"
    "Your goal: [your goal]\n"
    "state t: [the state at time step t]\n"
    "action t: [the action taken by the agent at time step t]\n"
    "state t+1: [the state at time step t+1]\n"
    "analyze: [The agent took action t in state t and transitioned to state t+1. Analyze the decision and its "
    "consequences, does the action help the agent achieve the goal or make progress?]\n"
    "Conclusion: [Based on the helpfulness, will you suggest the agent to take action t again, why?]\n"
    "Feedback: [your concise verbal feedback that can help the agent improve its performance]"
)
FEEDBACK_INTRO = "Advice from an expert who reviewed what happened after you were in this situation before: "


@dataclass(frozen=True)
class Step:
    """One step of a text episode: what the agent saw, which letter it chose, what it got.

    ``brief`` is a short form of the observation for the hindsight part of the
    reflector's prompt (a 30-step Key-Door episode in full sentences is 3,000
    tokens, 90 s of a 135M model on one CPU core per reflection); empty means ``obs``.
    """

    obs: str
    action: int
    reward: float
    brief: str = ""


@dataclass(frozen=True)
class TextTask:
    """How to prompt the policy and the reflector for one text env."""

    name: str
    actions: tuple[tuple[str, str], ...]  # (letter, description) in action-index order
    system: str  # the policy's system prompt (may hold {mission} and {actions})
    user: str  # the policy's user prompt: {observation}
    reflector_system: str
    reflector_user: str  # {obs}, {action}, {trajectory}

    @property
    def letters(self) -> list[str]:
        """The action letters in action-index order (``A`` is action 0)."""
        return [letter for letter, _ in self.actions]

    def action_list(self) -> str:
        """The actions as ``"letter": "description",`` lines, for ``{actions}`` in a system prompt."""
        return "\n".join(f'"{letter}": "{text}",' for letter, text in self.actions)

    def policy_messages(self, obs: str, feedback: str | None = None, mission: str = "") -> list[dict]:
        """The policy's chat messages for observation ``obs``: the system prompt (with ``mission`` and the
        action list filled in) and the user prompt, with ``feedback`` appended after ``FEEDBACK_INTRO``
        when given (an in-context update, or Reflexion's lessons).
        """
        user = self.user.format(observation=obs)
        if feedback:
            user += "\n" + FEEDBACK_INTRO + feedback
        system = self.system.format(mission=mission, actions=self.action_list())
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def describe_action(self, action: int) -> str:
        """Action index ``action`` as the prompts show it: ``letter (description)``."""
        letter, text = self.actions[action]
        return f"{letter} ({text})"

    def reflector_messages(
        self, steps: list[Step], t: int, mission: str = "", horizon: int | None = None
    ) -> list[dict]:
        """The reflector's prompt for step ``t`` of an episode: its observation, action and the hindsight after it.

        ``horizon`` keeps only that many steps of hindsight (the total reward still counts them all).
        """
        later = [(k, s) for k, s in enumerate(steps) if k > t]
        cut = horizon is not None and len(later) > horizon
        after = [
            f"step {k - t}: {s.brief or s.obs} | action: {self.describe_action(s.action)} | reward: {s.reward:g}"
            for k, s in (later[:horizon] if cut else later)
        ] + ([f"... {len(later) - horizon} more steps"] if cut else [])
        outcome = sum(s.reward for s in steps[t:])
        trajectory = (
            "\n" + "\n".join(after) if after else " (the episode ended after this step)"
        ) + f"\nTotal reward from step t on: {outcome:g}"
        user = self.reflector_user.format(
            obs=steps[t].obs, action=self.describe_action(steps[t].action), trajectory=trajectory
        )
        system = self.reflector_system.format(mission=mission, actions=self.action_list())
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def keydoor_task() -> TextTask:
    """The Key-Door prompts: letters A-D for the env's four actions, ``KEYDOOR_SYSTEM`` and
    ``KEYDOOR_REFLECTOR_SYSTEM``, and a user prompt that lists the actions after the observation.
    """
    from credo.envs.text.keydoor import ACTIONS

    letters = "ABCD"
    actions = tuple((letters[i], name) for i, name in enumerate(ACTIONS))
    user = (
        "{observation}\nActions:\n" + "\n".join(f"{a}: {d}" for a, d in actions) + "\nAnswer with one letter."
    )
    reflector_user = (
        "The state at step 0: {obs}\nThe action at step 0: {action}\nThe trajectory after it:{trajectory}"
    )
    return TextTask("keydoor", actions, KEYDOOR_SYSTEM, user, KEYDOOR_REFLECTOR_SYSTEM, reflector_user)


def babyai_task(task: str = "goto") -> TextTask:
    """The BabyAI prompts for ``task`` (of ``babyai:<task>``): the env's lettered actions and the
    ``BABYAI_*`` prompts; the reflector gets the policy's system prompt.
    """
    from credo.envs.text.babyai import ACTIONS

    return TextTask(
        f"babyai:{task}", tuple(ACTIONS), BABYAI_SYSTEM, BABYAI_USER, BABYAI_SYSTEM, BABYAI_REFLECTOR_USER
    )


def task_for(env_name: str) -> TextTask:
    """The prompts of text env ``env_name`` (``keydoor`` or ``babyai:<task>``); ValueError for others."""
    if env_name == "keydoor":
        return keydoor_task()
    if env_name.startswith("babyai:"):
        return babyai_task(env_name.split(":", 1)[1])
    raise ValueError(f"no prompts for text env {env_name!r}; known: keydoor, babyai:<task>")
