"""The built-in demo task: everyday-advice prompts the project writes itself.

Prompts are instruction templates x topics, all written for this project, so the pipeline runs
with nothing but the install. The gold reward is the simulated annotator (rlhf/annotators/
simulated.py), whose easy-to-learn signals are length band, courtesy phrases, a finished last
sentence and no repetition. The templates ask short, open advice questions on purpose: a small
chat model's samples for them differ exactly in those respects (some ramble past the token limit,
some loop, some open or close politely), which is the spread a reward model learns from.

Splits are fixed by a hash of the prompt id, independent of `seed`, so "sft", "rl" and "eval" never
share a prompt whichever seed a run uses; `seed` only picks and orders prompts inside a split.
"""

from __future__ import annotations

import hashlib
import random

from rlhf.core.errors import ConfigError

SPLITS = ("sft", "rl", "eval")
# Share of the (template, topic) grid per split, in hash buckets out of 100.
SPLIT_BUCKETS = {"sft": range(0, 35), "rl": range(35, 75), "eval": range(75, 100)}

# key -> (question template, answer kind). {topic} is a gerund phrase ("keeping a plant alive").
TEMPLATES = {
    "tips": ("Give me three tips for {topic}.", "tips"),
    "better": ("How can I get better at {topic}?", "advice"),
    "start": ("What is a good way to start {topic}?", "advice"),
    "why": ("Why does {topic} matter? Please answer briefly.", "why"),
    "mistakes": ("What is a common mistake people make when {topic}?", "mistake"),
    "begin": ("I want to improve at {topic}. Where should I begin?", "advice"),
    "advice": ("Can you share some advice about {topic}?", "advice"),
    "beginner": ("What should a beginner know about {topic}?", "tips"),
    "habit": ("Suggest one simple daily habit that helps with {topic}.", "habit"),
    "benefit": ("What is the biggest benefit of {topic}?", "why"),
    "friend": ("My friend is struggling with {topic}. What would you tell them?", "advice"),
    "avoid": ("What should I avoid when {topic}?", "mistake"),
    "steps": ("What are the first steps for {topic}?", "tips"),
    "quick": ("Give me a quick piece of advice on {topic}.", "advice"),
    "important": ("Why is {topic} worth the effort?", "why"),
    "routine": ("What small routine makes {topic} easier?", "habit"),
}

# topic -> (three tips, why it matters, a common mistake). Tips are imperative sentences.
TOPICS = {
    "saving money on groceries": (
        ("Plan your meals for the week and shop with a list.", "Compare unit prices instead of package prices.",
         "Buy staples like rice and beans in bulk."),
        "small savings on food add up to a lot over a year",
        "shopping while hungry, which leads to impulse buys",
    ),
    "sleeping better": (
        ("Go to bed and wake up at the same time every day.", "Keep your bedroom dark, quiet and cool.",
         "Put screens away an hour before bed."),
        "good sleep improves mood, memory and health",
        "drinking coffee late in the afternoon",
    ),
    "keeping a houseplant alive": (
        ("Check the soil before watering instead of following a fixed schedule.",
         "Place the plant where it gets the light its species likes.", "Use a pot with drainage holes."),
        "healthy plants brighten a room and are cheap to keep",
        "watering too often, which rots the roots",
    ),
    "learning a new language": (
        ("Practice a little every day rather than a lot once a week.",
         "Learn the most common words and phrases first.", "Speak with native speakers as early as you can."),
        "a new language opens up travel, work and friendships",
        "waiting to speak until your grammar feels perfect",
    ),
    "staying focused while studying": (
        ("Study in short blocks with a short break after each.", "Keep your phone in another room.",
         "Set one clear goal for each session."),
        "focused study time teaches you more in fewer hours",
        "trying to study with notifications turned on",
    ),
    "running a first 5k race": (
        ("Build up your distance slowly over several weeks.", "Mix running with short walking breaks at first.",
         "Start the race at a pace that feels easy."),
        "a clear goal keeps you motivated to exercise",
        "starting the race too fast and running out of energy",
    ),
    "writing a cover letter": (
        ("Address the letter to a real person when you can.",
         "Show how your experience matches the job description.", "Keep it to one page."),
        "a good letter explains why you fit the job better than a resume alone",
        "repeating the resume instead of telling a short story",
    ),
    "cooking rice": (
        ("Rinse the rice until the water runs clear.", "Use the right ratio of water to rice for the variety.",
         "Let it rest covered for a few minutes after cooking."),
        "rice is a cheap, filling base for many meals",
        "lifting the lid too often while it cooks",
    ),
    "making new friends in a new city": (
        ("Join a club or class built around something you enjoy.", "Say yes to invitations, even small ones.",
         "Follow up with people you meet within a few days."),
        "friends make a new place feel like home",
        "waiting for others to make the first move",
    ),
    "preparing for a job interview": (
        ("Research the company and the role before the day.", "Practice answers to common questions out loud.",
         "Prepare two or three questions to ask the interviewer."),
        "preparation lowers stress and helps you show your best side",
        "arriving without knowing what the company does",
    ),
    "drinking enough water": (
        ("Keep a refillable bottle with you during the day.", "Drink a glass of water with every meal.",
         "Eat water-rich foods like fruit and vegetables."),
        "water supports energy, focus and digestion",
        "waiting until you feel very thirsty",
    ),
    "organizing a small kitchen": (
        ("Store the things you use daily within easy reach.", "Use wall space for hooks and shelves.",
         "Give away tools you have not used in a year."),
        "an organized kitchen makes cooking faster and more pleasant",
        "buying storage boxes before clearing out clutter",
    ),
    "taking care of a new puppy": (
        ("Set a regular schedule for meals, walks and sleep.", "Reward good behavior right away with praise or treats.",
         "Introduce the puppy to new people and places gently."),
        "good early habits shape a calm and happy adult dog",
        "scolding the puppy long after an accident happened",
    ),
    "reducing stress at work": (
        ("Break large tasks into small steps.", "Take short breaks to stretch and breathe.",
         "Talk to your manager early when the workload is too high."),
        "lower stress helps both your health and your work",
        "skipping breaks to get more done",
    ),
    "reading more books": (
        ("Carry a book with you for spare moments.", "Read a few pages every night before sleep.",
         "Drop books you do not enjoy and pick another."),
        "reading builds knowledge, vocabulary and calm",
        "forcing yourself to finish a book you dislike",
    ),
    "starting a vegetable garden": (
        ("Begin with a small bed and a few easy crops.", "Choose a spot with at least six hours of sun.",
         "Improve the soil with compost before planting."),
        "growing food is rewarding and saves money",
        "planting too much at once and losing track of it",
    ),
    "giving a short presentation": (
        ("Open with one clear point the audience should remember.", "Use simple slides with few words.",
         "Rehearse out loud and time yourself."),
        "clear presentations help your ideas get heard",
        "reading every word from the slides",
    ),
    "budgeting for the month": (
        ("Write down your income and fixed bills first.", "Set a limit for each spending category.",
         "Track what you spend every few days."),
        "a budget shows where money goes and reduces worry",
        "forgetting irregular costs like gifts and repairs",
    ),
    "learning to play the guitar": (
        ("Practice for fifteen minutes every day.", "Learn a few basic chords before anything else.",
         "Play songs you like to stay motivated."),
        "music is a lifelong source of joy and relaxation",
        "skipping the basics to play hard songs too early",
    ),
    "keeping a tidy desk": (
        ("Clear the desk at the end of every day.", "Keep only the things you use daily on it.",
         "Give papers a folder or tray of their own."),
        "a tidy desk makes it easier to focus",
        "letting papers pile up for weeks",
    ),
    "eating more vegetables": (
        ("Add one vegetable to every meal.", "Keep cut vegetables ready for snacks.",
         "Try roasting them with a little oil and salt."),
        "vegetables give fiber, vitamins and lasting energy",
        "cooking them until they lose taste and color",
    ),
    "writing a clear email": (
        ("Put the main request in the first two lines.", "Use a subject line that says what the email is about.",
         "Keep paragraphs short."),
        "clear emails get faster and better answers",
        "burying the actual question at the end",
    ),
    "waking up early": (
        ("Move your bedtime earlier by fifteen minutes at a time.", "Put your alarm across the room.",
         "Get daylight soon after you wake up."),
        "quiet early hours are good for planning and exercise",
        "changing your wake time by hours overnight",
    ),
    "teaching a child to ride a bike": (
        ("Lower the seat so both feet reach the ground.", "Practice balance by gliding before pedaling.",
         "Choose a flat, empty path for the first tries."),
        "riding builds confidence and independence",
        "holding the bike so long that the child never learns balance",
    ),
    "managing time during exams": (
        ("Make a study plan that covers every subject.", "Start with the topics you find hardest.",
         "Leave the last day for light review and rest."),
        "good planning means less cramming and better results",
        "staying up all night before the exam",
    ),
    "traveling on a budget": (
        ("Travel outside the busy season.", "Book transport and rooms early.",
         "Eat where local people eat."),
        "cheap travel lets you see more places",
        "ignoring small daily costs that add up",
    ),
    "cleaning a bathroom quickly": (
        ("Spray the cleaner first and let it soak while you tidy.", "Work from top to bottom.",
         "Wipe the sink and mirror every few days."),
        "a clean bathroom stays healthier and easier to keep",
        "waiting until grime builds up and is hard to remove",
    ),
    "starting to meditate": (
        ("Sit quietly for five minutes a day to begin.", "Focus gently on your breathing.",
         "Use a short guided recording if your mind wanders."),
        "meditation can lower stress and improve focus",
        "expecting your mind to go completely quiet",
    ),
    "negotiating a salary": (
        ("Research the usual pay for the role first.", "Name a number based on that research.",
         "Talk about the value you bring, not your personal needs."),
        "a good start salary affects your pay for years",
        "accepting the first offer without asking",
    ),
    "caring for a cat": (
        ("Give fresh water and food at regular times.", "Keep the litter box clean.",
         "Play with the cat every day."),
        "a cared-for cat is healthy, calm and affectionate",
        "ignoring changes in eating or behavior",
    ),
    "baking bread at home": (
        ("Measure flour by weight for consistent results.", "Let the dough rise in a warm place.",
         "Bake until the loaf sounds hollow when tapped."),
        "homemade bread is fresh, cheap and satisfying",
        "cutting the bread before it has cooled",
    ),
    "recycling at home": (
        ("Learn which materials your local service accepts.", "Rinse containers before recycling them.",
         "Keep a separate bin next to the trash."),
        "recycling saves resources and reduces waste",
        "putting dirty or mixed materials in the bin",
    ),
    "being a good listener": (
        ("Let the other person finish before you reply.", "Ask questions about what they said.",
         "Put your phone away during the talk."),
        "people feel respected when they are heard",
        "planning your answer instead of listening",
    ),
    "improving handwriting": (
        ("Slow down and form each letter with care.", "Hold the pen loosely.",
         "Copy a short text every day."),
        "neat handwriting is easier for others to read",
        "gripping the pen too tightly",
    ),
    "packing for a weekend trip": (
        ("Check the weather before you pack.", "Choose clothes that mix and match.",
         "Keep toiletries in a small ready bag."),
        "light packing makes travel easier",
        "packing for every possible situation",
    ),
    "keeping a journal": (
        ("Write at the same time each day.", "Start with three lines about your day.",
         "Note one thing you are grateful for."),
        "a journal helps you think clearly and remember",
        "waiting for a big event before writing",
    ),
    "stretching after exercise": (
        ("Hold each stretch for about thirty seconds.", "Breathe slowly while stretching.",
         "Stretch the muscles you worked the most."),
        "stretching can ease stiffness and help recovery",
        "bouncing in a stretch, which strains the muscle",
    ),
    "choosing a laptop": (
        ("Decide what you will use it for first.", "Check the battery life and weight.",
         "Read reviews from several sources."),
        "the right laptop saves time and money",
        "paying for power you will never use",
    ),
    "making a good cup of tea": (
        ("Use fresh water that has just boiled.", "Steep for the time the tea type needs.",
         "Warm the cup before pouring."),
        "a well made cup of tea is a small daily pleasure",
        "steeping too long, which makes tea bitter",
    ),
    "fixing a bad posture": (
        ("Keep your feet flat on the floor when you sit.", "Raise your screen to eye level.",
         "Stand up and move every half hour."),
        "good posture reduces back and neck pain",
        "slouching for hours without noticing",
    ),
    "remembering people's names": (
        ("Repeat the name when you are introduced.", "Link the name to something about the person.",
         "Use the name once more before you say goodbye."),
        "people feel valued when you remember their names",
        "worrying about your own reply and not hearing the name",
    ),
    "planning a birthday party": (
        ("Set a budget and a guest list first.", "Send invitations two weeks ahead.",
         "Plan simple food that can be made in advance."),
        "a little planning lets you enjoy the party too",
        "leaving everything until the last day",
    ),
    "painting a room": (
        ("Clean the walls and cover the floor first.", "Use painter's tape along the edges.",
         "Apply two thin coats instead of one thick coat."),
        "fresh paint changes how a room feels at low cost",
        "skipping the primer on a dark or patchy wall",
    ),
    "keeping a car in good shape": (
        ("Check the tire pressure every month.", "Change the oil on schedule.",
         "Listen for new noises and get them checked early."),
        "regular care prevents costly repairs",
        "ignoring warning lights on the dashboard",
    ),
    "learning to swim as an adult": (
        ("Take lessons with a patient instructor.", "Practice floating and breathing before strokes.",
         "Go to the pool at quiet times."),
        "swimming is a safe skill and gentle exercise",
        "trying deep water before you feel comfortable",
    ),
    "writing a thank-you note": (
        ("Name the gift or favor you are thankful for.", "Say how it helped or made you feel.",
         "Send it within a week."),
        "a short note strengthens friendships",
        "sending a generic message that could fit anyone",
    ),
    "saving for an emergency fund": (
        ("Start with a small goal such as one month of expenses.",
         "Set up an automatic transfer on payday.", "Keep the fund in a separate account."),
        "an emergency fund turns a crisis into an inconvenience",
        "using the fund for things that are not emergencies",
    ),
    "protecting your eyes from screens": (
        ("Every twenty minutes, look at something far away for twenty seconds.",
         "Set the screen a little below eye level.", "Adjust the brightness to match the room."),
        "rested eyes mean fewer headaches and better focus",
        "working for hours without a break",
    ),
}

# Polite openers and closers; each reply gets one of each with probability POLITE_SHARE, so the SFT
# policy's samples differ in courtesy (0, 1 or 2 markers) and RL has something to learn.
OPENERS = ("Of course! ", "Great question! ", "Happy to help. ", "Certainly. ")
CLOSERS = (" Hope this helps!", " Good luck!", " Thank you for asking!", " Feel free to ask more.")
POLITE_SHARE = 0.5


def _bucket(prompt_id: str) -> int:
    return int(hashlib.sha256(prompt_id.encode()).hexdigest()[:8], 16) % 100


def _split_of(prompt_id: str) -> str:
    bucket = _bucket(prompt_id)
    return next(name for name, span in SPLIT_BUCKETS.items() if bucket in span)


def _grid() -> list[tuple[str, str, str]]:
    """(id, template key, topic) for the full template x topic grid, in a fixed order."""
    out = []
    for t_index, topic in enumerate(TOPICS):
        for key in TEMPLATES:
            out.append((f"demo-{key}-{t_index:02d}", key, topic))
    return out


def _prompt_text(template_key: str, topic: str) -> str:
    return TEMPLATES[template_key][0].format(topic=topic)


def demo_prompts(split: str, n: int | None = None, seed: int = 0) -> list[dict]:
    """`n` prompts of one split as {"id", "prompt": [user message]}, chosen and ordered by `seed`;
    n=None gives the whole split."""
    if split not in SPLITS:
        raise ConfigError("data.split", f"demo split must be one of {list(SPLITS)}, got {split!r}")
    pool = [(pid, key, topic) for pid, key, topic in _grid() if _split_of(pid) == split]
    random.Random(f"{split}-{seed}").shuffle(pool)
    if n is not None:
        if not 0 < n <= len(pool):
            raise ConfigError("data.sources.n", f"demo split '{split}' has {len(pool)} prompts; asked for {n}")
        pool = pool[:n]
    return [{"id": pid, "prompt": [{"role": "user", "content": _prompt_text(key, topic)}]} for pid, key, topic in pool]


def _lower_first(sentence: str) -> str:
    return sentence[0].lower() + sentence[1:]


def _answer_body(kind: str, topic: str) -> str:
    tips, why, mistake = TOPICS[topic]
    if kind == "tips":
        return f"Here are three tips for {topic}. First, {_lower_first(tips[0])} Second, {_lower_first(tips[1])} " \
               f"Third, {_lower_first(tips[2])}"
    if kind == "advice":
        return f"A good place to start is simple: {_lower_first(tips[0])} It also helps to {_lower_first(tips[1])} " \
               f"Over time, {_lower_first(tips[2])}"
    if kind == "why":
        return f"It matters because {why}. To get the most out of it, {_lower_first(tips[0])}"
    if kind == "mistake":
        return f"A common mistake is {mistake}. Instead, {_lower_first(tips[0])} It also helps to {_lower_first(tips[1])}"
    return f"Try this habit: {_lower_first(tips[0])} Small daily steps like this make {topic} much easier."


def demo_sft_records(n: int = 256, seed: int = 0) -> list[dict]:
    """`n` {"messages": [user, assistant]} records on the "sft" split.

    Replies are templated from each topic's tips: complete, about 20-50 words, ending on a full
    sentence. Half open and half close politely, independently, so SFT teaches the format while
    leaving the gold reward's courtesy criterion something for RL to improve.
    """
    if n <= 0:
        raise ConfigError("data.sources.n", f"need n > 0 demo SFT records, got {n}")
    rng = random.Random(f"sft-records-{seed}")
    prompts = [(key, topic) for pid, key, topic in _grid() if _split_of(pid) == "sft"]
    records = []
    for i in range(n):
        if i % len(prompts) == 0:
            rng.shuffle(prompts)
        key, topic = prompts[i % len(prompts)]
        opener = rng.choice(OPENERS) if rng.random() < POLITE_SHARE else ""
        closer = rng.choice(CLOSERS) if rng.random() < POLITE_SHARE else ""
        reply = opener + _answer_body(TEMPLATES[key][1], topic) + closer
        records.append({"messages": [{"role": "user", "content": _prompt_text(key, topic)},
                                     {"role": "assistant", "content": reply}], "source": "demo"})
    return records
