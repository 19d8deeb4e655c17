"""Name, street and place vocabularies, and the string noise applied to customer records."""

from __future__ import annotations

import numpy as np

#: Formal first name -> nicknames people also go by.
NICKNAMES: dict[str, tuple[str, ...]] = {
    "Robert": ("Bob", "Rob", "Bobby"),
    "Elizabeth": ("Liz", "Beth", "Lizzie"),
    "William": ("Bill", "Will", "Billy"),
    "Margaret": ("Maggie", "Peggy"),
    "James": ("Jim", "Jimmy"),
    "Katherine": ("Kate", "Kathy", "Katie"),
    "Michael": ("Mike", "Mick"),
    "Jennifer": ("Jen", "Jenny"),
    "Richard": ("Rick", "Dick", "Richie"),
    "Thomas": ("Tom", "Tommy"),
    "Alexander": ("Alex", "Sasha"),
    "Christopher": ("Chris",),
    "Daniel": ("Dan", "Danny"),
    "Patricia": ("Pat", "Trish"),
    "Susan": ("Sue", "Susie"),
    "Joseph": ("Joe", "Joey"),
    "Rebecca": ("Becky", "Becca"),
    "Samantha": ("Sam", "Sammy"),
    "Anthony": ("Tony",),
    "Victoria": ("Vicky", "Tori"),
    "Andrew": ("Andy", "Drew"),
    "Jonathan": ("Jon", "Johnny"),
    "Deborah": ("Debbie", "Deb"),
    "Edward": ("Ed", "Eddie", "Ted"),
    "Matthew": ("Matt",),
    "Nicholas": ("Nick", "Nicky"),
    "Stephanie": ("Steph",),
    "Benjamin": ("Ben", "Benny"),
    "Jessica": ("Jess", "Jessie"),
    "Charlotte": ("Charlie", "Lottie"),
}
PLAIN_FIRST: tuple[str, ...] = (
    "Emma", "Olivia", "Liam", "Noah", "Sofia", "Mia", "Lucas", "Chloe", "Leo", "Amelia", "Oscar", "Isla",
    "Harry", "Grace", "Jack", "Freya", "Ella", "Mohammed", "Aisha", "Priya", "Raj", "Wei", "Yuki", "Ana",
    "Luis", "Fatima", "Omar", "Zoe", "Ivan", "Nadia", "Sean", "Niamh", "Ewan", "Ruby", "Arthur", "Alice",
)  # fmt: skip
FIRST_NAMES: tuple[str, ...] = (*NICKNAMES, *PLAIN_FIRST)
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
    "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke",
    "Patel", "Khan", "Lewis", "James", "Phillips", "Mason", "Mitchell", "Rose", "Davis", "Rodriguez",
    "Cox", "Alexander", "Morgan", "Moore", "Martin", "Price", "Lee", "Harris", "Hughes", "Singh",
    "Murphy", "Kelly", "O'Brien", "Nguyen", "Chen", "Garcia", "Muller", "Novak", "Kowalski", "Rossi",
    "Bennett", "Carter", "Cooper", "Ward", "Turner", "Hill", "Scott", "Baker", "Young", "King",
)  # fmt: skip
STREETS: tuple[str, ...] = (
    "High Street", "Station Road", "Main Street", "Park Road", "Church Road", "Church Street", "London Road",
    "Victoria Road", "Green Lane", "Manor Road", "Church Lane", "Park Avenue", "The Avenue", "Queens Road",
    "New Road", "Grange Road", "Kings Road", "Kingsway", "Windsor Road", "Highfield Road", "Mill Lane",
    "Alexander Road", "York Road", "St. John's Road", "Main Road", "Broadway", "King Street", "The Green",
)  # fmt: skip
#: (city, region, postcode area)
PLACES: tuple[tuple[str, str, str], ...] = (
    ("London", "Greater London", "SW"), ("London", "Greater London", "N"), ("London", "Greater London", "E"),
    ("Manchester", "Greater Manchester", "M"), ("Birmingham", "West Midlands", "B"),
    ("Leeds", "West Yorkshire", "LS"), ("Glasgow", "Scotland", "G"), ("Bristol", "South West", "BS"),
    ("Liverpool", "Merseyside", "L"), ("Edinburgh", "Scotland", "EH"), ("Cardiff", "Wales", "CF"),
    ("Sheffield", "South Yorkshire", "S"), ("Nottingham", "East Midlands", "NG"), ("Leicester", "East Midlands", "LE"),
    ("Brighton", "South East", "BN"), ("Newcastle", "North East", "NE"), ("Oxford", "South East", "OX"),
)  # fmt: skip
EMAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
    "hotmail.com",
    "icloud.com",
    "btinternet.com",
)
_ALPHA = "abcdefghijklmnopqrstuvwxyz"
_KEYBOARD_NEIGHBOURS = {
    "a": "qsz", "b": "vgn", "c": "xdv", "d": "sfe", "e": "wrd", "f": "dgr", "g": "fht", "h": "gjy", "i": "uok",
    "j": "hku", "k": "jli", "l": "kop", "m": "nj", "n": "bmh", "o": "ipl", "p": "ol", "q": "wa", "r": "etf",
    "s": "adw", "t": "ryg", "u": "yij", "v": "cfb", "w": "qes", "x": "zcs", "y": "tuh", "z": "xa",
}  # fmt: skip


def typo(value: str, u: np.ndarray) -> str:
    """One realistic typo driven by four uniforms ``u``: substitute a neighbour key, drop, double or swap."""
    if len(value) < 3:
        return value
    pos = 1 + int(u[1] * (len(value) - 2))  # keep the first letter: people rarely mistype it
    kind = int(u[0] * 4)
    ch = value[pos]
    if kind == 0:
        pool = _KEYBOARD_NEIGHBOURS.get(ch.lower(), _ALPHA)
        new = pool[int(u[2] * len(pool))]
        new = new.upper() if ch.isupper() else new
        out = value[:pos] + new + value[pos + 1 :]
    elif kind == 1:
        out = value[:pos] + value[pos + 1 :]
    elif kind == 2:
        out = value[:pos] + ch + value[pos:]
    else:
        out = value[: pos - 1] + value[pos] + value[pos - 1] + value[pos + 1 :]
    return out if out != value else value[:pos] + value[pos + 1 :]


def typos(values: list[str], rng: np.random.Generator) -> list[str]:
    """`typo` over a list (records only: thousands of rows, not events)."""
    u = rng.random((len(values), 3))
    return [typo(v, row) for v, row in zip(values, u, strict=True)]


def nicknames(first: list[str], rng: np.random.Generator) -> list[str]:
    """A nickname for each formal name (names without one are returned unchanged)."""
    u = rng.random(len(first))
    out = []
    for name, x in zip(first, u, strict=True):
        nick = NICKNAMES.get(name)
        out.append(nick[int(x * len(nick))] if nick else name)
    return out
