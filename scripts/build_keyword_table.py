"""Build imgcap_desktop/core/data/imagenet_keywords.json: plain keywords for the 1000 ImageNet classes.

Inputs (development only; the app reads the JSON this writes):
- the 1000 class ids in model order and their names: ``timm/data/_info/imagenet_synsets.txt`` and
  ``imagenet_synset_to_lemma.txt`` from the PyPI wheel ``timm`` (Apache-2.0), unpacked to --timm-info;
- WordNet 3.0 (Princeton licence), Debian's ``wordnet-base`` (/usr/share/wordnet), read with NLTK.

Each class gets: its everyday name (first WordNet lemma, unless a curated override says better), and the
keyword of the first curated hypernym above it ("golden retriever" -> "dog", "tabby" -> "cat"). The
curated lists below are the hand-made part; everything else comes from WordNet.

    pip download --no-deps timm -d /tmp/pk && unzip -o /tmp/pk/timm-*.whl 'timm/data/_info/*' -d /tmp/pk/t
    apt-get install wordnet-base && pip install nltk
    # NLTK reads only below NLTK_DATA, and wants the lexnames file Debian leaves out (it is lexnames(5)):
    mkdir -p /tmp/nltk_data/corpora && cp -r /usr/share/wordnet /tmp/nltk_data/corpora/wordnet
    zcat /usr/share/man/man5/lexnames.5WN.gz | grep -E '^[0-9]{2}' | awk -F'\t' '{gsub(/ /,"",$2); split($2,a,".");
      print $1"\t"$2"\t"((a[1]=="adj")?3:(a[1]=="adv")?4:(a[1]=="noun")?1:2)}' > /tmp/nltk_data/corpora/wordnet/lexnames
    NLTK_DATA=/tmp/nltk_data python scripts/build_keyword_table.py --timm-info /tmp/pk/t/timm/data/_info
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: WordNet synset -> keyword, most specific first: a class takes the first one among its hypernyms.
#: None stops the search with no keyword: "animal" or "clothing" was almost never the word the
#: Flickr8k val captions used (9 % and 26 % of the time), so the class's own name is better alone.
CATEGORIES = [
    ("domestic_cat.n.01", "cat"), ("dog.n.01", "dog"), ("wolf.n.01", "wolf"), ("fox.n.01", "fox"),
    ("big_cat.n.01", "big cat"), ("bear.n.01", "bear"), ("monkey.n.01", "monkey"), ("ape.n.01", "ape"),
    ("butterfly.n.01", "butterfly"), ("beetle.n.01", "beetle"), ("spider.n.01", "spider"),
    ("insect.n.01", "insect"), ("parrot.n.01", "parrot"), ("owl.n.01", "owl"), ("duck.n.01", "duck"),
    ("bird.n.01", "bird"), ("shark.n.01", "shark"), ("fish.n.01", "fish"), ("snake.n.01", "snake"),
    ("lizard.n.01", "lizard"), ("turtle.n.02", "turtle"), ("frog.n.01", "frog"), ("crab.n.01", "crab"),
    ("horse.n.01", "horse"), ("bovid.n.01", None), ("swine.n.01", "pig"), ("rodent.n.01", "rodent"),
    ("whale.n.02", "whale"), ("placental.n.01", None), ("invertebrate.n.01", None),
    ("car.n.01", "car"), ("truck.n.01", "truck"), ("bus.n.01", "bus"), ("train.n.01", "train"),
    ("locomotive.n.01", "train"), ("bicycle.n.01", "bicycle"), ("motorcycle.n.01", "motorcycle"),
    ("aircraft.n.01", "aircraft"), ("ship.n.01", "ship"), ("boat.n.01", "boat"), ("vessel.n.02", "boat"),
    ("fruit.n.01", "fruit"), ("vegetable.n.01", "vegetable"), ("dish.n.02", "food"), ("bread.n.01", "bread"),
    ("beverage.n.01", "drink"), ("food.n.02", "food"), ("flower.n.01", "flower"),
    ("musical_instrument.n.01", None), ("hat.n.01", "hat"), ("footwear.n.02", "shoes"),
    ("ball.n.01", "ball"), ("seat.n.03", "seat"), ("table.n.02", "table"), ("bed.n.01", "bed"),
    ("furniture.n.01", "furniture"), ("building.n.01", "building"), ("bridge.n.01", "bridge"),
    ("computer.n.01", "computer"), ("clock.n.01", "clock"), ("timepiece.n.01", "clock"),
    ("container.n.01", None), ("garment.n.01", None), ("weapon.n.01", None),
]

#: Class names WordNet words badly for a caption or a tag (by ImageNet id).
NAME_OVERRIDES = {
    "n02123045": "tabby cat", "n02123159": "tiger cat", "n02124075": "Egyptian cat",
    "n07920052": "espresso", "n03063599": "coffee mug", "n07930864": "cup", "n02504458": "elephant",
    "n02504013": "elephant", "n02412080": "ram", "n03792782": "mountain bike", "n04509417": "unicycle",
    "n03594945": "jeep", "n04285008": "sports car", "n03345487": "fire engine", "n02690373": "airliner",
    "n09472597": "volcano", "n09428293": "beach", "n09421951": "sandbar", "n09246464": "cliff",
    "n03028079": "church", "n03781244": "monastery", "n04346328": "stupa", "n03877845": "palace",
    "n02791270": "barbershop", "n04443257": "tobacco shop", "n03032252": "cinema",
    "n06794110": "street sign", "n06874185": "traffic light", "n04335435": "streetcar",
    "n03417042": "garbage truck", "n04389033": "tank", "n03691459": "loudspeaker",
    "n02992529": "cellphone", "n03085013": "computer keyboard", "n03642806": "laptop",
    "n04590129": "window shade", "n03018349": "china cabinet", "n04239074": "sliding door",
    "n02999410": "chain", "n04357314": "sunscreen", "n07614500": "ice cream", "n07873807": "pizza",
    "n07697313": "cheeseburger", "n02814533": "station wagon", "n07697537": "hot dog", "n07711569": "mashed potato",
    "n09193705": "mountain", "n09835506": "baseball player", "n03792972": "tent", "n04344873": "couch",
}

#: Extra keywords for classes whose everyday word is not a WordNet hypernym.
EXTRA = {
    "n07920052": ["coffee"], "n07930864": ["coffee"], "n03063599": ["coffee", "mug"], "n04254120": ["soap"],
    "n09472597": ["mountain"], "n09193705": ["mountain"], "n09468604": ["valley"], "n09428293": ["sea"],
    "n09421951": ["beach"], "n09332890": ["lake"], "n09399592": ["beach"], "n03028079": ["building"],
    "n02966193": ["carousel"], "n04335435": ["tram"], "n03792782": ["bicycle"], "n03785016": ["motorcycle"],
    "n03791053": ["motorcycle"], "n04482393": ["tricycle"], "n03394916": ["horn"], "n03388043": ["fountain"],
    "n03764736": ["milk"], "n04604644": ["fence"], "n03877845": ["building"], "n04486054": ["arch"],
    "n03220513": ["building"], "n03000134": ["fence"], "n04326547": ["wall"], "n04040759": ["radiator"],
    "n04179913": ["sewing machine"], "n06596364": ["comic book"], "n07248320": ["book"], "n02870880": ["bookcase"],
    "n04200800": ["shoe shop"], "n03461385": ["grocery store"], "n04081281": ["restaurant"],
    "n02776631": ["bakery"], "n07742313": ["apple"], "n02927161": ["butcher shop"],
    "n02676566": ["guitar"], "n03272010": ["guitar"], "n09835506": ["baseball"], "n02799071": ["baseball"],
}

#: Classes whose WordNet hypernym misleads more often than it helps (balloon.n.01 is an aircraft).
NO_CATEGORY = {"n02782093"}

#: Words a reference may use for a keyword (for scoring, and for matching tags a person typed).
SYNONYMS = {
    "dog": ["dogs", "puppy", "puppies"], "cat": ["cats", "kitten", "kitty"], "bicycle": ["bike", "bicycles", "bikes"],
    "motorcycle": ["motorbike", "bike", "motorcycles", "dirt bike"], "car": ["cars", "vehicle"],
    "boat": ["boats", "canoe", "kayak", "raft"], "aircraft": ["plane", "airplane", "jet"], "airliner": ["plane", "jet"],
    "bird": ["birds"], "fish": ["fishes"], "horse": ["horses", "pony"], "food": ["meal", "plate"],
    "drink": ["drinks"], "shoes": ["shoe", "boots", "sneakers"], "hat": ["hats", "cap"], "ball": ["balls"],
    "flower": ["flowers"], "building": ["buildings", "house"], "sea": ["ocean", "water"], "lake": ["water"],
    "beach": ["shore", "sand"], "mountain": ["mountains", "hill", "hills"], "clothing": ["shirt", "jacket"],
    "truck": ["trucks"], "bus": ["buses"], "train": ["trains"], "bridge": ["bridges"], "table": ["tables"],
    "seat": ["chair", "bench", "sofa", "couch"], "swing": ["swings"], "umbrella": ["umbrellas"],
    "jersey": ["shirt", "uniform"], "sweatshirt": ["shirt", "hoodie"], "bikini": ["swimsuit"],
    "swimming trunks": ["swimsuit", "trunks"], "snowmobile": ["snow"], "ski": ["skis", "skiing", "skier"],
    "mountain bike": ["bike", "bicycle"], "golden retriever": ["retriever"], "rugby ball": ["football"],
    "football helmet": ["helmet", "football"], "crash helmet": ["helmet"], "stage": ["concert"],
    "seashore": ["beach", "shore", "ocean"], "volleyball": ["volleyball"], "basketball": ["basketball"],
    "soccer ball": ["soccer", "ball"], "cellphone": ["phone", "cell phone"], "sunglasses": ["glasses"],
    "cowboy hat": ["hat"], "sombrero": ["hat"], "coffee": ["cup"], "tram": ["trolley"],
    "sea lion": ["seal"], "guitar": ["guitars"], "baseball player": ["baseball"], "couch": ["sofa"],
}


def everyday(name: str) -> str:
    name = name.replace("_", " ")
    return name if any(c.isupper() for c in name[1:]) or name[:1].isupper() and " " in name else name.lower()


def build(info: Path) -> list[dict]:
    from nltk.corpus import wordnet as wn  # NLTK_DATA=DIR with DIR/corpora/wordnet (see the module docstring)
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    # The mapping to other WordNet versions (for multilingual data) needs index.sense, which Debian
    # does not ship; this is WordNet 3.0 itself, so there is nothing to map.
    WordNetCorpusReader.map_wn = lambda self, version="3.0": None

    categories = [(wn.synset(s), k) for s, k in CATEGORIES]
    ids = info.joinpath("imagenet_synsets.txt").read_text().split()
    assert len(ids) == 1000, len(ids)
    table = []
    for index, wnid in enumerate(ids):
        synset = wn.synset_from_pos_and_offset(wnid[0], int(wnid[1:]))
        name = NAME_OVERRIDES.get(wnid) or everyday(synset.lemmas()[0].name())
        above = set(synset.closure(lambda s: s.hypernyms() + s.instance_hypernyms())) | {synset}
        category = None if wnid in NO_CATEGORY else next((k for s, k in categories if s in above), None)
        words = [name]
        for extra in [category, *EXTRA.get(wnid, [])]:
            if extra and extra not in words and extra != name.split()[-1] + "s":
                words.append(extra)
        table.append({"index": index, "wnid": wnid, "wordnet": synset.name(), "keywords": words})
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timm-info", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("imgcap_desktop/core/data/imagenet_keywords.json"))
    args = parser.parse_args()
    table = build(args.timm_info)
    document = {
        "about": "Keywords for the 1000 ImageNet-1k classes, in model output order; see imagenet_keywords.md.",
        "classes": [entry["keywords"] for entry in table],
        "wnids": [entry["wnid"] for entry in table],
        "synonyms": SYNONYMS,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
    with_category = sum(len(e["keywords"]) > 1 for e in table)
    print(f"wrote {args.out}: 1000 classes, {with_category} with a broader keyword")


if __name__ == "__main__":
    main()
