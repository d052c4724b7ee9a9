"""Write ``search/background.txt``: the random captions the relevance cut-off reads as its background.

The adaptive cut-off (:mod:`pixseek.search.cutoff`) asks how far a query's best scores stand above
what captions written without looking at the index reach. Those captions are composed here from
word lists written for pixseek (everyday subjects, attributes and settings, in the manner of photo
captions: "a wooden chair beside a river", "two yellow umbrellas at night"), drawn with a fixed seed,
so the file is the same on every run. Most describe nothing in a given collection; the few that do
are why the cut-off reads a high quantile of the background, not its maximum.

Usage: python scripts/make_background_captions.py  (rewrites search/background.txt)
"""

from __future__ import annotations

import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "search" / "background.txt"
COUNT = 256
SEED = 15


def _words(text: str) -> list[str]:
    return text.split()


SUBJECTS = _words("""
dog cat horse cow sheep goat pig chicken duck owl eagle parrot penguin swan fish shark whale dolphin
octopus crab snail bee butterfly spider ant frog turtle snake lizard crocodile lion tiger bear fox
wolf deer rabbit squirrel mouse monkey elephant giraffe zebra camel kangaroo
man woman child baby girl boy farmer nurse teacher musician dancer runner swimmer cyclist
car bus truck tractor bicycle motorcycle train tram airplane helicopter boat ship rocket scooter
apple banana orange lemon cherry grape strawberry pineapple carrot tomato potato onion pumpkin
cake pie bread cheese sandwich pizza burger salad soup noodles rice egg cookie donut
cup mug bottle glass plate bowl spoon fork knife kettle teapot
chair table sofa bed lamp clock mirror window door staircase fence gate
book newspaper letter envelope pencil pen notebook map globe calendar
phone laptop keyboard television radio camera headphones speaker battery lightbulb
guitar violin piano drum trumpet flute
ball kite balloon umbrella suitcase backpack hat scarf glove boot shoe jacket dress shirt
ring necklace watch key lock coin hammer saw ladder shovel bucket rope
tree flower rose tulip sunflower cactus palm mushroom leaf pine fern
house barn tent castle church tower bridge lighthouse windmill fountain statue
mountain hill volcano island cave waterfall river lake pond beach cliff field meadow forest
""")

PLURALS = {
    "sheep": "sheep",
    "fish": "fish",
    "deer": "deer",
    "man": "men",
    "woman": "women",
    "child": "children",
    "mouse": "mice",
    "knife": "knives",
    "leaf": "leaves",
    "shelf": "shelves",
    "scarf": "scarves",
    "glass": "glasses",
    "bus": "buses",
    "box": "boxes",
    "dress": "dresses",
    "watch": "watches",
    "sandwich": "sandwiches",
    "cactus": "cacti",
    "tomato": "tomatoes",
    "potato": "potatoes",
    "volcano": "volcanoes",
    "strawberry": "strawberries",
    "cherry": "cherries",
    "baby": "babies",
    "butterfly": "butterflies",
    "pony": "ponies",
}

ATTRIBUTES = _words("""
red orange yellow green blue purple pink brown black white grey golden silver striped spotted
wooden metal glass plastic paper stone woollen old new broken tiny huge tall small round square
wet dusty shiny colourful dark bright empty full sleeping running smiling frozen
""")

SETTINGS = [
    "on a table",
    "on the floor",
    "in a kitchen",
    "in a garden",
    "in a park",
    "on a beach",
    "in the snow",
    "in the rain",
    "at night",
    "at sunset",
    "in a forest",
    "on a street",
    "in a field",
    "by a river",
    "near a lake",
    "on a mountain",
    "in a classroom",
    "in an office",
    "in a shop window",
    "at a market",
    "on a shelf",
    "in a box",
    "under a tree",
    "beside a road",
    "in the desert",
    "on a boat",
    "in a museum",
    "at the zoo",
    "on a farm",
    "in the sky",
    "under water",
    "on a white background",
    "in a drawing",
    "in an old photograph",
    "in a painting",
    "as a cartoon",
    "in close-up",
    "seen from above",
    "in the fog",
    "in autumn",
    "in spring",
    "in a city square",
    "at a wedding",
    "at a birthday party",
    "in a hospital",
    "at a train station",
    "in a library",
    "on a balcony",
]

NUMBERS = ["two", "three", "four", "five", "several", "many"]
ARTICLES = {True: "an", False: "a"}


def article(word: str) -> str:
    return ARTICLES[word[0] in "aeiou"]


def plural(noun: str) -> str:
    if noun in PLURALS:
        return PLURALS[noun]
    if noun.endswith(("s", "sh", "ch", "x")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def caption(rng: random.Random) -> str:
    noun, adj = rng.choice(SUBJECTS), rng.choice(ATTRIBUTES)
    other, place = rng.choice(SUBJECTS), rng.choice(SETTINGS)
    form = rng.randrange(6)
    if form == 0:
        return f"{article(noun)} {noun} {place}"
    if form == 1:
        return f"{article(adj)} {adj} {noun}"
    if form == 2:
        return f"{article(adj)} {adj} {noun} {place}"
    if form == 3:
        return f"{rng.choice(NUMBERS)} {plural(noun)} {place}"
    if form == 4:
        return f"{article(noun)} {noun} and {article(other)} {other}"
    return f"{article(noun)} {noun} next to {article(adj)} {adj} {other}"


def captions(count: int = COUNT, seed: int = SEED) -> list[str]:
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    while len(seen) < count:
        seen.setdefault(caption(rng), None)
    return list(seen)


def main() -> None:
    head = [
        "# Background captions for the relevance cut-off (pixseek.search.cutoff): what queries that were",
        "# written without looking at an index score against it. Composed from word lists by",
        f"# scripts/make_background_captions.py (seed {SEED}); rewrite with that script, not by hand.",
    ]
    OUT.write_text("\n".join(head + captions()) + "\n", encoding="utf-8")
    print(f"wrote {COUNT} captions to {OUT}")


if __name__ == "__main__":
    main()
