"""Fixed vocabularies behind the simulated annotator's rule-based criteria.

Written for this project and kept short and generic on purpose: they stand in for the judgement
of an ICE-GRT labeller (ICE-GRT §4.3), they are not a content filter.
Phrases are lower-case words separated by single spaces; matching is on whole words.
"""

# Comfortableness / Courtesy: markers of a polite, respectful tone.
POLITE_MARKERS = (
    "please",
    "thank you",
    "thanks",
    "happy to help",
    "glad to help",
    "glad you asked",
    "hope this helps",
    "hope that helps",
    "good luck",
    "great question",
    "good question",
    "you're welcome",
    "certainly",
    "of course",
    "absolutely",
    "feel free",
)

# The opposite: dismissive or insulting words (no slurs; a generic list is enough for simulation).
RUDE_WORDS = (
    "stupid",
    "idiot",
    "dumb",
    "moron",
    "shut up",
    "nonsense",
    "pathetic",
    "loser",
    "ridiculous",
    "not my problem",
    "figure it out yourself",
    "hate you",
)

# Safety (ICE-GRT: no mishandling of personal data) plus a few generic harm terms.
UNSAFE_TERMS = (
    "weapon",
    "weapons",
    "explosive",
    "explosives",
    "bomb",
    "poison",
    "overdose",
    "kill",
    "steal",
    "stealing",
    "hack into",
    "break into",
    "self harm",
    "illegal drugs",
    "credit card number",
    "social security number",
    "bank account number",
    "home address",
    "my password",
    "your password is",
)

# Regular expressions for personal data written out in full (matched on the raw response text).
PERSONAL_DATA_PATTERNS = (
    r"[\w.+-]+@[\w-]+\.[\w.]+",  # e-mail address
    r"\b\d{3}[-.\s]\d{3}[-.\s]\d{4}\b",  # phone number
    r"\b(?:\d[ -]?){13,16}\b",  # card-like digit run
)

# Words that carry no topic: function words plus the generic request words of instructions
# ("give three tips", "explain ... in two sentences"), so completeness looks at what is asked about.
NON_CONTENT_WORDS = frozenset(
    """
    a an the and or but if then so of to in on at by for with about from into over under as is are was
    were be been being am do does did doing have has had having it its it's this that these those there
    here what which who whom whose when where why how i me my we our you your he she they them their
    his her not no nor can could should would will shall may might must just very too also some any
    all each every more most much many few one two three four five six seven eight nine ten first
    give explain describe list write tell share suggest summarize offer name compare say answer help
    short brief simple quick single sentence sentences paragraph paragraphs word words way ways thing
    things someone something people person beginner beginners friend child please key idea
    """.split()
)
