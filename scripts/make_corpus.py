"""Regenerate ``tinytorch/milestones/data/corpus.txt``, the text milestone 05 trains a character-level GPT on.

Every sentence here was written for TinyTorch: a set of short essays (the
``ESSAYS`` below) and a small sentence grammar (hand-written templates and word
lists) that a seeded generator expands into short paragraphs about days,
weather, places, work and machines. Nothing is copied from any other text.

The output is lowercase ASCII: letters, digits, space, newline and
``. , ; : ' ? ! -`` (a vocabulary of about 45 characters), deterministic for a
given ``SEED``. Usage: ``python scripts/make_corpus.py [--check]``.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import textwrap
from pathlib import Path

SEED = 2017
TARGET_BYTES = 64_000
OUT = (
    Path(__file__).resolve().parents[1]
    / "packages/tinytorch-milestones/src/tinytorch/milestones/data/corpus.txt"
)

ESSAYS = [
    # --- machines that learn -------------------------------------------------
    """In the late fifties a psychologist built a machine that could learn to tell
    simple shapes apart. It had a grid of light sensors for an eye, a few hundred
    wires with adjustable strengths, and one rule: when the answer was wrong, nudge
    every strength a little toward the right answer. Newspapers promised that such
    machines would soon walk and talk. They did not, but the rule survived, and
    it still sits at the heart of every network trained today.""",
    """A decade later two mathematicians wrote a careful book about what a single
    layer of such units could and could not do. The most famous example was tiny:
    two inputs, and the output should be on when exactly one of them is on. No
    straight line separates those four points, so one layer can never learn it.
    The book was read as a verdict on the whole field, money went elsewhere, and
    the winter that followed lasted for years.""",
    """The thaw came from an old idea put to work. If a network has hidden layers,
    the error at the output can be passed backward, layer by layer, using nothing
    more than the chain rule from a first course in calculus. Each weight learns
    how much it contributed to the mistake. With that, a network with one hidden
    layer solved the puzzle of the two inputs in a few hundred steps, and people
    began to train networks on handwriting, speech and sonar echoes.""",
    """Handwritten digits became the standard test. A postal code on an envelope
    is a row of small pictures, and a machine that reads them saves a great deal
    of dull work. The networks that did it best shared their weights across the
    image: the same small filter slides over every position, so a stroke is
    recognised wherever it appears. Pooling then shrinks the picture, and the next
    layer looks for combinations of strokes. The idea is old, yet the phone in
    your pocket still uses it.""",
    """For a long time, text was read one word after another, with a memory passed
    along like a note between runners. Long sentences wore the note thin. Then
    came a simpler plan: let every word look at every other word at once, and let
    the network decide which ones matter. This is attention. It needs more memory
    for long texts, but it trains quickly on many processors, and models built
    from it now write, translate and answer questions.""",
    """Once networks worked, the question changed from whether they work to what
    they cost. How many milliseconds does one prediction take? How many bytes do
    the weights fill? Benchmarks began to fix the rules: the same task, the same
    quality target, and a stopwatch. Engineers learned to store weights in eight
    bits instead of thirty two, to remove connections that do nothing, and to keep
    the keys and values of past tokens so that generating text does not repeat
    the same work at every step.""",
    """A tensor is only a box of numbers with a shape. A vector has one axis, a
    matrix has two, and a batch of colour images has four: the image, the channel,
    the row and the column. Almost everything a network does is a handful of
    operations on such boxes: add them, multiply them, sum along an axis, reshape
    them without moving a single number. The art is to write each operation once,
    for whole boxes at a time, and never to loop over the numbers one by one.""",
    """To compute a gradient by hand is slow and easy to get wrong. The trick of
    automatic differentiation is to remember, during the forward pass, which
    operation produced each value. Walking that record backward, every operation
    only has to know its own small derivative. Multiply those local pieces along
    every path and add the paths together, and the gradient of the loss with
    respect to every weight falls out, exact to the last bit the machine can hold.""",
    """Training is a loop with four steps. Show the model a batch of examples,
    measure how wrong it is, find the direction that makes it less wrong, and take
    a small step that way. The size of the step is the learning rate. Too small and
    the model crawls; too large and it jumps past the valley and climbs the other
    side. Momentum helps by remembering the last few steps, the way a ball rolling
    downhill keeps going through small bumps.""",
    """Never judge a model on the examples it learned from. A student who has seen
    the answers can recite them without understanding. Keep some data aside, do
    not look at it while training, and measure the model there only at the end.
    If the score on the held out data is much worse than on the training data,
    the model has memorised instead of learned, and more data or a smaller model
    is usually the cure.""",
    """A small model on a small computer teaches more than a large one on a rented
    cluster. Every layer can be printed, every gradient checked against a slow
    version written with plain loops, every byte of memory counted. When the
    numbers agree to six decimal places, you know the fast version is right, and
    you know why it is fast.""",
    # --- computing -------------------------------------------------------------
    """The first computers filled rooms and were programmed by moving cables from
    one socket to another. Later, programs were punched into cards, and a single
    dropped box of cards could cost a week of work. Today a laptop holds more
    memory than every machine of that era put together, yet the basic ideas have
    hardly changed: a processor fetches an instruction, does a little arithmetic,
    and stores the result somewhere it can find again.""",
    """Memory is a ladder of trade offs. The registers inside the processor are
    fast and few. The caches are larger and a little slower. Main memory is large
    and slow by comparison, and the disk is slower still. A program that reads
    numbers in the order they sit in memory runs many times faster than one that
    jumps around, even when both do the same arithmetic. Much of making code fast
    is simply arranging for the next number to be close to the last one.""",
    """A good error message is a small kindness. It says what went wrong, where,
    and what to do next. Compare a program that stops with a cryptic number to one
    that says the shapes of two matrices do not match and prints both shapes. The
    second one saves an afternoon. Writing such messages takes a few extra lines,
    and those lines are read far more often than they are written.""",
    """When a file is downloaded, it should be written under a temporary name and
    renamed only after its checksum has been verified. Then a lost connection or
    a full disk leaves nothing behind that looks complete but is not. The same
    habit applies to saving a model: write the new file, check it, and only then
    replace the old one.""",
    # --- nature ----------------------------------------------------------------
    """At the edge of the marsh the reeds grow taller than a person, and in late
    summer they turn the colour of dry bread. Herons stand in the shallows so still
    that they seem to be part of the landscape, until the neck uncoils and a fish
    is gone. In the evening the frogs start one at a time, then all together, and
    the sound carries across the water to the village.""",
    """An old oak is a small city. Beetles live under the bark, woodpeckers drill
    for them, owls nest in the hollows that the woodpeckers leave behind, and
    mosses cover the north side of the trunk. In autumn the acorns fall, jays
    bury them in the ground and forget half of them, and a few of the forgotten
    ones become the next oaks.""",
    """Snow changes the sound of a town. The traffic is muffled, the footsteps are
    soft, and the voices of children carry a long way across the park. On the
    first morning everything is clean and unmarked; by noon the paths are grey,
    and by evening the snowmen lean a little to one side as if they were tired.""",
    """The tide goes out twice a day and leaves the rock pools full of small lives.
    Crabs hide under the weed, anemones close into red beads when touched, and
    tiny fish dart from shadow to shadow. Children crouch over the pools for hours,
    and the sea comes back in its own time, covering everything again without
    any hurry.""",
    """Bees do not fly at random. A worker who finds a good patch of flowers comes
    home and dances on the comb, and the angle of the dance tells the others which
    way to fly relative to the sun. The length of the dance says how far. It is a
    map drawn in movement, read in the dark by sisters who have never seen it.""",
    """In spring the river rises with meltwater from the hills and runs brown and
    fast under the bridge. By midsummer it is low and clear, and you can see trout
    holding their place against the current with small flicks of the tail. Swallows
    skim the surface for insects, and the willows trail their branches in the water.""",
    # --- everyday life ---------------------------------------------------------
    """The bakery on the corner opens before dawn. The first light in the street is
    the yellow window where the baker shapes the loaves, and the smell reaches the
    bus stop long before the doors open. By seven there is a short queue of people
    in work clothes, and by nine the best bread is gone.""",
    """My grandmother kept a notebook of every recipe she trusted. The pages were
    stained with flour and oil, and the margins were full of corrections: less
    salt, a hotter oven, wait until the onions are golden. She said a recipe is an
    experiment that someone has already run for you, but you still have to check
    their results in your own kitchen.""",
    """The night train leaves at ten and arrives a little after dawn. The carriage
    rocks gently, the rails click under the floor, and the lights of small stations
    pass the window like slow sparks. Some passengers read, some sleep, and one
    always stays awake by the window, watching the dark fields go by.""",
    """A garden teaches patience. Seeds go into the cold ground and nothing seems to
    happen for weeks. Then one morning there is a line of green along the row, and
    after that the work never stops: weeding, watering, tying up the beans, chasing
    the snails away. In late summer the table is full, and the work feels light.""",
    """The public library is one of the few places where nobody asks you to buy
    anything. You can sit by the window for an afternoon with a pile of books, and
    the only rule is to speak quietly. Students write essays, old men read the
    newspapers, and small children sit on the carpet while someone reads aloud
    about a bear who lost his hat.""",
    """Repairing a bicycle is a good way to learn how things work. The chain, the
    gears and the brakes are all in plain view. If the chain slips, you can watch
    it slip and see why. A few tools, some patience and a rag for the grease are
    enough, and the ride home on a bicycle you fixed yourself feels faster than
    any other.""",
    """On market day the square fills with stalls before the church bell rings
    eight. There are crates of apples and pears, wheels of cheese, buckets of cut
    flowers and a man who sharpens knives on a stone wheel. People argue about
    prices in a friendly way, and by one o'clock the stalls are packed up and the
    square is swept as if nothing had happened.""",
    # --- more essays -----------------------------------------------------------
    """Weavers in the early eighteen hundreds controlled their looms with chains of
    punched cards: a hole meant lift this thread, no hole meant leave it down. A
    complicated pattern needed thousands of cards, but the loom never tired and
    never made a mistake. Engineers who later designed calculating machines
    borrowed the cards, and for more than a century holes in paper were how people
    talked to machines.""",
    """The abacus is a computer with no electricity. Beads on rods stand for ones,
    tens and hundreds, and a practised hand moves them faster than most people can
    press the keys of a calculator. What matters is not the wood but the method:
    a number is stored in a pattern of positions, and arithmetic is a set of rules
    for changing the pattern.""",
    """A clock is a machine for counting something that repeats. A pendulum swings,
    a quartz crystal vibrates, an atom absorbs light at one exact frequency, and
    the clock counts the repeats and turns them into hours. The better the thing
    that repeats, the better the clock. Our phones agree on the time because they
    listen to clocks in satellites, which listen to clocks on the ground.""",
    """A compiler translates a program written for people into instructions written
    for a processor. It reads the text, checks that it makes sense, builds a tree
    of what each line means, rearranges the tree so that it runs faster, and
    finally writes out the machine code. Nobody reads that code, but every program
    you use has passed through a compiler, often through several.""",
    """The telegraph shrank the world in a few decades. A message that once took
    weeks by ship could cross an ocean in minutes as a sequence of short and long
    pulses. Operators learned to hear the pulses as letters, and some could tell
    who was sending by the rhythm of their hand, the way we recognise a friend's
    handwriting.""",
    """Chess programs were once a test of machine intelligence. The early ones
    searched every move a few steps ahead and scored the positions with rules that
    strong players wrote down. Later programs taught themselves by playing against
    copies of themselves millions of times. They now beat every human, and the
    best players use them as patient teachers.""",
    """Learning to swim is mostly learning not to fight the water. Children splash
    and sink because they hold their breath and stiffen. The teacher says to lie
    back, breathe out slowly and let the water carry you. One day it works, and
    after that the body never forgets, even after years away from the pool.""",
    """A map leaves things out on purpose. A map of the underground shows the order
    of the stations and where the lines cross, but not the true distances or the
    bends of the tunnels. A walking map shows every path and stile but not the
    motorways. The art is in choosing what to ignore, which is also true of most
    models of anything.""",
    """A fox lives at the edge of our street. We see it most nights, trotting along
    the pavement as if it had an appointment, stopping to sniff the bins and then
    slipping under the fence of the empty house. In the spring there were three
    cubs on the lawn, tumbling over each other in the last light of the day.""",
    """Kites are older than writing in some parts of the world. A square of paper or
    silk on a light frame, a long string and a steady wind are all it takes. On a
    good day at the beach you can feel the kite pull like a living thing, and the
    trick is to let out string slowly, never all at once.""",
    """Cities at night are drawn in light. The main roads are rivers of red and
    white, the office towers are grids of yellow squares, and the parks are dark
    holes between them. From a plane the shapes are beautiful, and it is strange to
    think that each of those points is a kitchen, a desk or a stairwell with
    somebody in it.""",
    """The post office in our village is also the shop, the bank and the place where
    news travels fastest. The woman behind the counter knows everybody's name and
    most of their business. Parcels wait on the shelf behind her, and if you are
    not home, she will keep yours until you come by, and ask how your mother is.""",
    """Mountains make their own weather. Warm air is pushed up the slopes, cools,
    and drops its water as cloud and rain on one side, so the other side stays dry.
    Climbers learn to read the sky in the morning: a clear dawn with small clouds
    growing fast over the peaks means it is time to start down before noon.""",
    """Rain on a tin roof is one of the oldest kinds of music. It begins as a few
    loud taps, builds to a steady roar, and fades again into single drops that fall
    from the gutter long after the shower has passed. Many people sleep better with
    that sound than with silence.""",
    """A bridge is a calculation that people walk across. The engineer must know the
    weight of the deck, the worst wind, the heaviest lorry, and how the steel will
    stretch on the hottest day. The numbers are checked again and again, because a
    bridge that is almost right is not good enough.""",
    """Every program has bugs, and the best way to find them is to assume that you
    are wrong. Write down what you expect, run the smallest case you can think of,
    and compare. When a test fails, read the message slowly. Most bugs are simple
    once they are found, and most of the time is spent looking in the wrong place.""",
    """The moon has no weather, so the footprints of the first visitors are still
    there, sharp in the grey dust. The same face always points toward us, because
    the moon turns once on its axis for every trip around the earth. People who
    have stood on it say the sky was black even in full sunlight, and the earth
    hung above the horizon like a blue marble.""",
    """A lighthouse keeper once had to climb the stairs every few hours to wind the
    clockwork that turned the lamp. The work was lonely and the weather was often
    terrible, but ships depended on the light being exactly where the charts said
    it would be, flashing exactly as the charts said it would flash. Now the lamps
    run on their own, and the keepers' houses are museums.""",
]

# --- a small sentence grammar: templates and word lists, all written for TinyTorch ---
NAMES = [
    "anna", "ben", "carla", "david", "elena", "farid", "grace", "hugo", "ines", "jonas",
    "kofi", "lena", "marco", "nadia", "oskar", "priya", "quentin", "rosa", "samir", "tara",
]
TIMES = [
    "early in the morning", "just after sunrise", "at noon", "in the middle of the afternoon",
    "late in the evening", "after supper", "on a grey monday", "on a bright saturday",
    "before the shops opened", "long after midnight", "on the first warm day of the year",
    "at the end of a long week",
]
PLACES = [
    "the harbour", "the old market", "the village square", "the edge of the forest",
    "the top of the hill", "the river bank", "the station", "the small park",
    "the back garden", "the library steps", "the empty beach", "the orchard",
]
SKIES = ["pale blue", "heavy and grey", "clear and cold", "streaked with pink", "low and damp",
         "bright and windy", "the colour of slate", "full of small white clouds"]
WEATHER = [
    "a light rain began to fall", "the wind picked up from the west", "fog rolled in from the sea",
    "the sun broke through for a moment", "the air smelled of cut grass", "snow settled on the roofs",
    "the puddles froze at the edges", "a warm breeze moved the leaves", "thunder rumbled far away",
]
ACTIVITIES = [
    ("walked to", "place"), ("cycled to", "place"), ("sat for an hour at", "place"),
    ("sketched the view from", "place"), ("waited for a friend at", "place"),
    ("read a book at", "place"), ("took photographs at", "place"),
]
CHORES = [
    "baked two loaves of bread", "mended a torn sleeve", "repaired the kitchen tap",
    "planted a row of onions", "wrote a long letter", "cleaned the windows",
    "sorted a box of old photographs", "painted the garden fence", "made a pot of soup",
    "tuned the old piano", "fixed a flat tyre", "tidied the workshop",
]
AFTER = [
    "felt pleased with the day", "decided to do it again the next week", "forgot the time completely",
    "laughed at how long it had taken", "made a note of what to do better", "went home tired but happy",
    "told nobody about it", "was surprised by how quiet everything was",
]
SEASONS = ["spring", "early summer", "late summer", "autumn", "winter"]
PLANTS = ["the willows", "the wild roses", "the beech trees", "the reeds", "the poppies",
          "the hawthorn hedges", "the ferns", "the apple trees"]
PLANT_VERBS = ["come into flower", "turn gold", "drop their leaves", "grow thick and green",
               "bend in the wind", "fill with birds"]
WATERS = ["the river", "the canal", "the lake shore", "the stream", "the old mill pond"]
ANIMALS = ["swallows", "ducks", "foxes", "herons", "bees", "deer", "swifts", "otters", "crows"]
ANIMAL_VERBS = ["hunt along the water", "gather in the fields", "nest under the bridge",
                "move quietly through the grass", "call to each other at dusk",
                "search for food among the stones"]
MODELS = ["perceptron", "small network", "convolutional network", "transformer",
          "two layer network", "language model", "classifier"]
TASKS = ["recognise handwritten digits", "tell cats from dogs", "predict the next character",
         "sort a list of numbers", "reverse a short sequence", "separate two clouds of points",
         "read postal codes", "translate short sentences"]
METHODS = ["following the gradient downhill", "adjusting its weights after every mistake",
           "comparing its guesses with the labels", "repeating the same examples many times",
           "paying attention to the most useful inputs"]
VERDICTS = [
    "and it is judged only on examples it has never seen",
    "and its accuracy climbs slowly from chance",
    "and the loss falls quickly at first, then more slowly",
    "and a larger learning rate makes the training unstable",
    "and a smaller version runs almost as well in a fraction of the time",
    "and the test score tells us whether it has really learned",
]
QUESTIONS = [
    ("is the kettle on?", ["it has just boiled", "not yet, give it a minute"]),
    ("did you see the heron this morning?", ["yes, it was standing by the bridge", "no, only ducks"]),
    ("how long will the training take?", ["about a minute on this laptop", "less than the tea"]),
    ("where did you leave the map?", ["on the shelf by the door", "in the glove box, i think"]),
    ("shall we walk or take the bus?", ["let us walk, the rain has stopped", "the bus, my feet hurt"]),
    ("why is the loss going up?", ["the learning rate is too high", "check the labels first"]),
    ("what time does the market close?", ["at one o'clock sharp", "when the bread runs out"]),
]
NUMBERS = ["two", "three", "four", "five", "six", "seven", "ten", "twelve", "twenty"]


def sentence(rng: random.Random) -> str:
    """One sentence from one of the grammar's templates, chosen at random."""
    pick = rng.choice
    kind = rng.randrange(7)
    if kind == 0:
        return f"{pick(TIMES)}, the sky over {pick(PLACES)} was {pick(SKIES)}, and {pick(WEATHER)}."
    if kind == 1:
        verb, _ = pick(ACTIVITIES)
        return f"{pick(NAMES)} {verb} {pick(PLACES)} {pick(TIMES)} and {pick(AFTER)}."
    if kind == 2:
        return f"{pick(TIMES)}, {pick(NAMES)} {pick(CHORES)} and {pick(AFTER)}."
    if kind == 3:
        return (f"in {pick(SEASONS)}, {pick(PLANTS)} along {pick(WATERS)} {pick(PLANT_VERBS)}, "
                f"while {pick(ANIMALS)} {pick(ANIMAL_VERBS)}.")
    if kind == 4:
        return (f"a {pick(MODELS)} can learn to {pick(TASKS)} by {pick(METHODS)}, {pick(VERDICTS)}.")
    if kind == 5:
        q, answers = pick(QUESTIONS)
        a, b = rng.sample(NAMES, 2)
        return f"'{q}' asked {a}. '{pick(answers)},' said {b}."
    n = pick(NUMBERS)
    return f"there were {n} {pick(ANIMALS)} near {pick(PLACES)}, and {pick(NAMES)} counted them twice."


def paragraph(rng: random.Random) -> str:
    text = " ".join(sentence(rng) for _ in range(rng.randint(3, 6)))
    return textwrap.fill(text, width=78)


def clean(text: str) -> str:
    """Lowercase, single spaces, wrapped at 78 columns."""
    text = re.sub(r"\s+", " ", text.strip()).lower()
    return textwrap.fill(text, width=78)


ALPHABET = set("abcdefghijklmnopqrstuvwxyz0123456789 \n.,;:'?!-")


def build() -> str:
    rng = random.Random(SEED)
    essays = [clean(e) for e in ESSAYS]
    parts: list[str] = []
    # Interleave: every essay, each followed by generated paragraphs, until the target size.
    i = 0
    while sum(len(p) + 2 for p in parts) < TARGET_BYTES:
        if i < len(essays):
            parts.append(essays[i])
            i += 1
        parts.append(paragraph(rng))
    text = "\n\n".join(parts) + "\n"
    stray = set(text) - ALPHABET
    if stray:
        raise SystemExit(f"characters outside the corpus alphabet: {sorted(stray)}")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped file, write nothing")
    args = parser.parse_args(argv)
    text = build()
    if args.check:
        same = OUT.is_file() and OUT.read_text(encoding="utf-8") == text
        print(f"{OUT}: {'up to date' if same else 'DIFFERS'}")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {OUT} ({len(text)} characters, {len(set(text))} distinct)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
