"""Fictional concept names (ProntoQA's "-pus" ontology), adjectives and person names."""

CONCEPTS = (
    "wumpus yumpus zumpus dumpus rompus numpus tumpus vumpus impus jompus gorpus shumpus "
    "lempus sterpus grimpus lorpus brimpus terpus gerpus fompus kerpus scrompus yerpus "
    "bompus timpus boompus rempus rorpus yimpus hilpus storpus felpus worpus quimpus "
    "zhorpus chorpus welpus kempus gwompus porpus"
).split()

# Pairs of opposites are not needed: a property is asserted or negated ("is not floral").
ADJECTIVES = (
    "floral melodic opaque small slow overcast metallic dull hot sour happy bright cold "
    "fruity kind large loud liquid luminous mean nervous red shy spicy sweet transparent "
    "wooden aggressive amenable angry bitter blue brown feisty"
).split()

PEOPLE = (
    "Alex Bob Davis Fae Gary Jack Max Polly Rex Sally Sam Stella Tom Wren Zoe Ivy"
).split()


def plural(concept: str) -> str:
    return concept + "es" if concept.endswith("s") else concept + "s"


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"
