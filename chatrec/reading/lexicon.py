"""Deterministic preference reading: a negation-aware cue lexicon (pure, no model).

``read_genres(text)`` returns the genres a message asks for and the ones it rejects.
How negation works, in the order applied:

1. The message is cut into clauses at sentence punctuation, commas and contrast words
   ("but", "though", "instead", ...). Negation never crosses a clause boundary.
2. Inside a clause, a *pre*-negation cue ("no", "not a fan of", "anything but", "I'm tired of",
   ...) flips every genre cue after it, until a scope breaker ("for", "I want", "just", ...).
3. A *post*-negation cue after a genre ("... are not my thing", "... bore me") flips the genres
   before it in that clause.
4. A negated seeing verb ("haven't seen", "never watched", "not sure I've seen") is not a rejection:
   what follows it is *unseen*, neither liked nor disliked, and stays in the semantic query.

What it does not handle: sarcasm, negated negations ("not that I dislike comedy"), and genre cues
the lexicon has no word for (the embedding matcher in :mod:`chatrec.llm.extract` covers those).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chatrec.core.preferences import GENRES

_GENRE_SET = frozenset(GENRES)

# Phrases that contain a genre word but do not mean the genre.
MASKS = [
    r"live[- ]action", r"action[- ]packed\s+romance", r"science (?:documentar|museum)", r"real[- ]life",
    r"war of the worlds", r"star wars", r"family (?:drama|feud)", r"drama queen", r"comedy of errors",
    r"make me laugh at", r"crime scene", r"romance novel",
]

# Cue patterns per genre; matched on lower-cased text with word boundaries.
CUES: dict[str, list[str]] = {
    "Action": [r"action", r"explosions?", r"gun ?fights?", r"shoot[- ]?(?:'?em|them)[- ]?ups?", r"shootouts?",
               r"car chases?", r"martial arts?", r"kung[- ]?fu", r"karate", r"fight scenes?", r"fighting", r"superheroe?s?",
               r"super[- ]heroe?s?", r"blockbusters?", r"stunts?", r"adrenaline", r"fist ?fights?", r"brawls?"],
    "Adventure": [r"adventures?", r"adventurous", r"treasure(?: hunt(?:ing)?)?", r"quests?", r"expeditions?",
                  r"swashbuckl\w*", r"pirates?", r"jungle", r"explor(?:e|ing|ers?|ation)"],
    "Animation": [r"animat(?:ed|ion|e)", r"cartoons?", r"anime", r"pixar", r"ghibli", r"disney animat\w*",
                  r"stop[- ]motion", r"claymation", r"dreamworks"],
    "Children": [r"kids?", r"children'?s?", r"child", r"family[- ]friendly", r"for the (?:whole )?family",
                 r"family (?:movie|film)s?", r"little ones", r"toddlers?", r"(?:\d+|six|five|seven|eight|four)"
                 r"[- ]?(?:year|yr)[- ]?olds?", r"my (?:son|daughter|nephew|niece)", r"grandkids?"],
    "Comedy": [r"comed(?:y|ies|ic)", r"funny", r"funniest", r"hilarious", r"laugh(?:s|ing|ter)?",
               r"humou?r(?:ous)?", r"rom-?coms?", r"sitcom", r"goofy", r"silly", r"slapstick", r"jokes?", r"joking", r"gags?", r"spoofs?",
               r"parod(?:y|ies)", r"witty", r"lighthearted", r"light-hearted", r"feel[- ]good", r"giggles?"],
    "Crime": [r"crimes?", r"criminals?", r"heists?", r"robber(?:y|ies)", r"gangsters?", r"mob(?:sters?)?",
              r"mafia", r"cartels?", r"drug lords?", r"hitm[ae]n", r"cops?", r"police", r"con ?(?:men|man|artists?)",
              r"bank jobs?", r"thieves", r"thief", r"organi[sz]ed crime", r"serial killers?"],
    "Documentary": [r"documentar(?:y|ies)", r"docs?", r"docu[- ]?series", r"non[- ]?fiction"],
    "Drama": [r"dramas?", r"dramatic", r"emotional", r"tear ?jerkers?", r"make me cry", r"made me cry",
              r"cry(?:ing)?", r"sad", r"moving", r"heartfelt", r"touching", r"melodramas?", r"character stud(?:y|ies)",
              r"serious", r"heart[- ]?breaking", r"poignant", r"somber"],
    "Fantasy": [r"fantasy", r"fantasies", r"fantastical", r"magic(?:al)?", r"wizards?", r"witch(?:es)?",
                r"dragons?", r"sorcer(?:y|ers?)", r"sword and sorcery", r"elves", r"fairy ?tales?", r"mythical",
                r"enchanted", r"middle[- ]earth"],
    "Film-Noir": [r"film[- ]noir", r"noir", r"neo[- ]noir", r"hard[- ]?boiled", r"femme fatales?"],
    "Horror": [r"horrors?", r"scary", r"scariest", r"scare(?:s|d)?", r"spooky", r"creepy", r"zombies?",
               r"gore", r"gory", r"slashers?", r"haunted", r"hauntings?", r"ghosts?", r"vampires?", r"werewol(?:f|ves)",
               r"demons?", r"possession", r"exorcism", r"frightening", r"terrifying", r"nightmares?",
               r"jump ?scares?", r"blood(?:y|bath)", r"psychos?"],
    "Musical": [r"musicals?", r"sing(?:ing|-?alongs?)?", r"songs?", r"dancing", r"dance", r"broadway",
                r"show ?tunes?"],
    "Mystery": [r"myster(?:y|ies|ious)", r"whodunn?its?", r"detectives?", r"sleuths?", r"puzzles?",
                r"murder myster(?:y|ies)", r"clues?", r"sherlock", r"agatha christie",
                r"guess(?:ing)? (?:the|who(?:'s| is)? the) (?:killer|murderer|culprit)"],
    "Romance": [r"romance", r"romances", r"romantic", r"rom-?coms?", r"love stor(?:y|ies)", r"falling in love",
                r"love triangles?", r"date night", r"dating", r"lovers?", r"kissing", r"sappy", r"chick flicks?",
                r"relationships?", r"mushy", r"in love", r"lovey[- ]dovey"],
    "Sci-Fi": [r"sci-?fi", r"science[- ]fiction", r"space(?:ships?| operas?| travel)?", r"aliens?",
               r"outer space", r"robots?", r"androids?", r"cyborgs?", r"time[- ]travel(?:l?ing)?", r"futuristic",
               r"future", r"dystopi(?:a|an)", r"cyberpunk", r"galax(?:y|ies)", r"planets?", r"star ?ships?",
               r"extraterrestrials?", r"ufos?", r"artificial intelligence", r"\bai\b"],
    "Thriller": [r"thrillers?", r"thrilling", r"suspense(?:ful)?", r"edge of (?:my|your|the) seat", r"tense",
                 r"tension", r"nail[- ]?biters?", r"gripping", r"psychological", r"conspirac(?:y|ies)", r"spy",
                 r"spies", r"espionage", r"serial killers?", r"killers?", r"stalkers?", r"kidnapp\w+", r"hostages?",
                 r"paranoi(?:a|d)"],
    "War": [r"wars?", r"world war(?: (?:ii|2|two|i|1|one))?", r"wwi+", r"ww[12]", r"battles?", r"battlefields?",
            r"soldiers?", r"trenches", r"military", r"army", r"combat", r"vietnam", r"d-day", r"normandy",
            r"platoon", r"troops"],
    "Western": [r"westerns?", r"cowboys?", r"wild west", r"old west", r"gunslingers?", r"outlaws?", r"sheriffs?",
                r"frontier", r"spaghetti westerns?", r"ranch(?:es)?", r"saloons?"],
}

# The genre's own names: a genre turned down by name ("no war films", "not a comedy") becomes a hard
# exclusion; one turned down through a cue word ("nothing too gory", "no blood") stays a soft dislike.
NAMED: dict[str, str] = {
    "Action": r"action", "Adventure": r"adventures?", "Animation": r"animat(?:ed|ion)|cartoons?|anime",
    "Children": r"kids?|children'?s?|family[- ]friendly|family (?:movie|film)s?|for the (?:whole )?family",
    "Comedy": r"comed(?:y|ies)|rom-?coms?|sitcoms?", "Crime": r"crimes?|heists?|gangsters?|mafia|mob",
    "Documentary": r"documentar(?:y|ies)|docs?", "Drama": r"dramas?", "Fantasy": r"fantas(?:y|ies)",
    "Film-Noir": r"(?:film[- ])?noir", "Horror": r"horrors?|slashers?", "Musical": r"musicals?",
    "Mystery": r"myster(?:y|ies)|whodunn?its?", "Romance": r"romances?|romantic|rom-?coms?|love stor(?:y|ies)",
    "Sci-Fi": r"sci-fi|science[- ]fiction", "Thriller": r"thrillers?", "War": r"wars?", "Western": r"westerns?",
}
_named_res = {genre: re.compile(rf"(?:{p})") for genre, p in NAMED.items()}


def named_genre(genre: str, phrase: str) -> bool:
    """Whether ``phrase`` is one of the genre's own names (not a cue word such as "gory" for Horror)."""
    rx = _named_res.get(genre)
    return bool(rx and rx.fullmatch(phrase.strip()))


# Cue words that must not be read on their own (they need a genre context to count).
WEAK = {
    ("Sci-Fi", r"future"), ("Drama", r"serious"), ("Drama", r"moving"), ("War", r"battles?"),
    ("Mystery", r"clues?"), ("Mystery", r"puzzles?"), ("Musical", r"songs?"),
    ("Musical", r"dance"), ("Musical", r"dancing"), ("Crime", r"cops?"), ("Crime", r"police"),
    ("Horror", r"nightmares?"), ("Thriller", r"killers?"), ("Thriller", r"psychological"),
    ("Romance", r"relationships?"), ("Romance", r"lovers?"), ("Sci-Fi", r"planets?"), ("Drama", r"cry(?:ing)?"),
    ("Horror", r"psychos?"), ("Horror", r"blood(?:y|bath)"), ("Adventure", r"jungle"), ("Thriller", r"tension"),
    ("Sci-Fi", r"\bai\b"), ("Adventure", r"explor(?:e|ing|ers?|ation)"), ("Children", r"child"),
    ("Romance", r"dating"), ("Western", r"ranch(?:es)?"), ("Western", r"frontier"), ("Action", r"stunts?"),
    ("Action", r"blockbusters?"), ("Action", r"fighting"), ("Documentary", r"docs?"), ("Drama", r"sad"),
}

PRE_NEGATION = [
    r"\bno\b", r"\bnot\b", r"n't\b", r"\bnever\b", r"\bwithout\b", r"\banything but\b", r"\banything except\b",
    r"\bexcept(?: for)?\b", r"\bother than\b", r"\bbesides\b", r"\bnothing\b", r"\bnone\b", r"\bnor\b",
    r"\bhate[sd]?\b", r"\bhating\b", r"\bdislike[sd]?\b", r"\bdetest\b", r"\bloathe\b", r"\babhor\b",
    r"\bcan'?t stand\b", r"\bcannot stand\b", r"\bcan'?t bear\b", r"\b(?:i'?m|i am|im) (?:so |really |just )?"
    r"(?:tired|sick|done|over|bored|fed up) (?:of|with)\b", r"\bsick of\b", r"\btired of\b", r"\bfed up with\b",
    r"\bavoid(?:ing)?\b", r"\bskip(?:ping)?\b", r"\bless\b", r"\bfewer\b",
    r"\brather not\b", r"\benough (?:of|with)\b", r"\bspare me\b", r"\bno more\b", r"\bstay away from\b",
    r"\bsteer clear of\b", r"\bkeep\b(?=.{0,40}\baway\b)", r"\bnot in the mood for\b", r"\bexclude\b", r"\bminus\b", r"\binstead of\b", r"\b(?:not|wasn't|wasnt|isn't|never been|never was) (?:really )?(?:a |much of a )?(?:big |huge |great )?fan of\b",
    r"\b(?:didn't|did not|don't|do not) (?:really )?care (?:too much |that much |much )?for\b",
    r"\bbored (?:of|by|with)\b", r"\bugh\b", r"\bnah\b", r"\bterrible\b",
]
POST_NEGATION = [
    r"\b(?:is|are|was|were)n'?t (?:really |exactly )?(?:my|for me)\b", r"\bnot (?:really )?(?:my|for me)\b",
    r"\bnot my (?:thing|cup of tea|jam|style|genre)\b", r"\bbores? me\b", r"\bbored me\b", r"\bput me to sleep\b",
    r"\b(?:is|are|was|were) (?:so )?(?:boring|overrated|the worst|awful|terrible|lame)\b", r"\bcan go\b",
    r"\bturn(?:s)? me off\b", r"\bgives? me nightmares\b", r"\bi (?:do not|don'?t|never) (?:like|enjoy|want|watch)\b",
    r"\bare out\b", r"\bis out\b", r"\bnever (?:make|makes|made) me\b", r"\bno thanks\b", r"\bnot again\b",
    r"\bget (?:old|boring)\b", r"\bhave had enough\b",
]
# "Not seen" is not "not liked": a negated seeing verb ("haven't seen", "never watched", "not sure
# I've seen", "never heard of") leaves what follows unseen, neither liked nor disliked. Present-tense
# habits ("I never watch horror", "I don't watch musicals") stay rejections.
_UNSEEN_FILL = (r"(?:\s+(?:yet|ever|actually|really|even|personally|got(?:ten)? (?:a chance |around )?to|"
                r"been able to|had (?:a|the) chance to|sat down and|had time to))*")
UNSEEN = [
    rf"\b(?:have not|haven't|havent|has not|hasn't|had not|hadn't|never|not){_UNSEEN_FILL}\s+"
    r"(?:seen|watched|heard of|heard about|caught)\b",
    rf"\b(?:did not|didn't|didnt){_UNSEEN_FILL}\s+(?:see|watch|catch|get to see|get to watch)\b",
    r"\bnever (?:saw|got to see)\b", r"\byet to (?:see|watch)\b",
    r"\b(?:not sure|don't think|do not think|can't remember|cannot remember|don't remember|don't recall)"
    r"(?: if| whether| that)? (?:i|we|they|he|she)(?:'ve| have|'d)?(?: ever| actually)?(?: sat down and)?"
    r" (?:seen|watched|saw|heard of)\b",
]
# A clause that is only "not X" after a clause about seeing ("I've seen Predator but not First Blood").
_SEEN_VERB = re.compile(r"\b(?:seen|saw|watched)\b")
_BARE_NOT = re.compile(r"^\s*(?:not|never)\b")

# Words that end a negation's reach inside a clause.
SCOPE_BREAK = [
    r"\bfor\b", r"\bi (?:want|need|prefer|like|love|enjoy|would like|'d like)\b", r"\bi'?d (?:like|love|prefer)\b",
    r"\bjust\b", r"\brather\b", r"\binstead\b", r"\bprefer\b", r"\bgive me\b", r"\bmaybe\b", r"\bmore of\b",
    r"\bis fine\b", r"\bare fine\b", r"\bis ok(?:ay)?\b", r"\bare ok(?:ay)?\b", r"\bwould be\b", r"\bsomething\b",
    r"\bbut\b", r"\bwhich\b", r"\bthat (?:is|are)\b", r"\baway from\b",
]
CLAUSE_SPLIT = re.compile(
    r"[.!?;:\n]+|,|\s-\s|\b(?:but|though|although|however|whereas|instead|yet|so)\b|\bi (?:prefer|want|just want|'d rather|would rather)\b"
)

_cue_res = {
    genre: [(re.compile(rf"(?<![\w-]){p}(?![\w-])"), (genre, p) in WEAK) for p in pats] for genre, pats in CUES.items()
}
_mask_re = re.compile(r"\b(?:" + "|".join(MASKS) + r")\b")
# Longest cue first, so "not in the mood for" wins over "not" at the same position.
_pre_re = re.compile("|".join(sorted(PRE_NEGATION, key=len, reverse=True)))
_post_re = re.compile("|".join(sorted(POST_NEGATION, key=len, reverse=True)))
_break_re = re.compile("|".join(SCOPE_BREAK))
_unseen_re = re.compile("|".join(UNSEEN))


def normalise(text: str) -> str:
    text = text.lower().replace("’", "'").replace("‘", "'")
    text = re.sub(r"\bsci\s*fi\b|\bscifi\b", "sci-fi", text)
    text = re.sub(r"\bdont\b", "don't", text)
    text = re.sub(r"\bcant\b", "can't", text)
    text = re.sub(r"\bdoesnt\b", "doesn't", text)
    text = re.sub(r"\bim\b", "i'm", text)
    # "anything but X" is an exclusion, not a contrast: keep the clause splitter off it
    text = re.sub(r"\b(anything|all) but\b", r"\1 except", text)
    text = re.sub(r"\bnothing but\b", "only", text)
    text = re.sub(r"-(style|esque|like|ish|type)\b", r" \1", text)
    return _fix_typos(text)


_CANON = sorted({
    "comedy", "comedies", "documentary", "documentaries", "thriller", "thrillers", "horror", "romance",
    "romantic", "animation", "animated", "western", "westerns", "musical", "musicals", "mystery", "mysteries",
    "fantasy", "adventure", "adventures", "children", "drama", "dramas", "action", "crime", "science",
    "fiction", "suspense", "suspenseful", "hilarious", "cartoons", "superhero", "superheroes", "whodunit",
})


def _edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, giving up (returning limit + 1) once it must exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        if min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]


def _fix_typos(text: str) -> str:
    """Snap misspelt genre words ("documentries", "comdey") to their spelling; short words are left alone."""

    def fix(m: re.Match) -> str:
        word = m.group(0)
        if len(word) < 6 or word in _CANON:
            return word
        limit = 1 if len(word) < 9 else 2
        best = min(_CANON, key=lambda c: _edit_distance(word, c, limit))
        return best if _edit_distance(word, best, limit) <= limit else word

    return re.sub(r"[a-z]+", fix, text)


def genre_mentions(clause: str) -> list[tuple[int, str, str, bool]]:
    """(position, genre, phrase, weak) for every cue in a clause, earliest first, no overlaps."""
    found: list[tuple[int, int, str, str, bool]] = []
    for genre, patterns in _cue_res.items():
        for rx, weak in patterns:
            for m in rx.finditer(clause):
                found.append((m.start(), m.end(), genre, m.group(0), weak))
    found.sort(key=lambda f: (f[0], -(f[1] - f[0])))
    out: list[tuple[int, str, str, bool]] = []
    taken: list[tuple[int, int]] = []
    for start, end, genre, phrase, weak in found:
        # a longer phrase already covering this span wins ("rom-com" over "com"), but two genres
        # may share the exact same span ("rom-com" → Romance and Comedy)
        if any(s <= start and end <= e and (s, e) != (start, end) for s, e in taken):
            continue
        taken.append((start, end))
        out.append((start, genre, phrase, weak))
    return out


@dataclass(frozen=True)
class Reading:
    """Everything the clause scan found: keyed mentions with polarity, and the un-negated text."""

    likes: tuple[str, ...]
    dislikes: tuple[str, ...]
    evidence: tuple[tuple[str, str, str], ...]
    positive_text: str
    unseen: tuple[str, ...] = ()  # named as not seen: neither liked nor disliked


def scan(text: str, finders=(genre_mentions,)) -> Reading:
    """Run the clause/negation machinery over every finder's mentions (genres, tags, titles).

    A finder returns ``(position, key, phrase, weak)`` for a lower-cased clause. ``positive_text``
    is the message with negated stretches cut out: what the user asked for, for the semantic query.
    """
    norm = _mask_re.sub(" ", normalise(text))
    likes: dict[str, None] = {}
    dislikes: dict[str, None] = {}
    unseen: dict[str, None] = {}
    evidence: list[tuple[str, str, str]] = []
    kept_text: list[str] = []
    previous = ""
    for clause in CLAUSE_SPLIT.split(norm):
        if not clause or not clause.strip():
            continue
        mentions = sorted(m for finder in finders for m in finder(clause))
        seeing = [(m.start(), m.end()) for m in _unseen_re.finditer(clause)]
        if not seeing and _SEEN_VERB.search(previous) and (m := _BARE_NOT.match(clause)):
            seeing = [(m.start(), m.end())]
        # a negation word inside "haven't seen" is part of the seeing cue, not a rejection
        pre = [(a, b) for a, b in ((m.start(), m.end()) for m in _pre_re.finditer(clause))
               if not any(s <= a < e for s, e in seeing)]
        breaks = [m.start() for m in _break_re.finditer(clause)]
        post = [m.start() for m in _post_re.finditer(clause)]
        kept_text.append(_unnegated(clause, pre, breaks, post))
        previous = clause
        if not mentions:
            continue
        has_strong = any(not m[3] and m[1] in _GENRE_SET for m in mentions)
        for pos, key, phrase, weak in mentions:
            if weak and not has_strong:  # weak cues ("love", "future", "sad") need a clear cue beside them
                continue
            polarity = _nearest_cue(pos, pre, seeing, breaks)
            if polarity == "unseen":
                unseen[key] = None
                evidence.append((key, "unseen", phrase))
                continue
            negated = polarity == "dislike" or any(p > pos for p in post)
            (dislikes if negated else likes)[key] = None
            evidence.append((key, "dislike" if negated else "like", phrase))
    # A key both asked for and rejected: the request wins. Mixed signals are nearly always a
    # feature of a wanted genre being declined ("creepy but not gory", "comedies, not rom-coms").
    for k in likes:
        dislikes.pop(k, None)
    for k in (*likes, *dislikes):
        unseen.pop(k, None)
    positive = re.sub(r"\s+", " ", " ".join(kept_text)).strip()
    return Reading(tuple(likes), tuple(dislikes), tuple(evidence), positive, tuple(unseen))


def _nearest_cue(pos: int, pre, seeing, breaks) -> str | None:
    """What the last negation or not-seen cue before ``pos`` makes of it, "dislike" or "unseen", if
    that cue reaches it (no scope breaker in between); None otherwise."""
    cues = [(end, "dislike") for _, end in pre if end <= pos] + [(end, "unseen") for _, end in seeing if end <= pos]
    if not cues:
        return None
    end, polarity = max(cues)
    return None if any(end <= b < pos for b in breaks) else polarity


def _unnegated(clause: str, pre, breaks, post) -> str:
    """The clause without its negated stretches (cue → next scope breaker), and without a clause
    that a post-negation cue rejects as a whole."""
    if post:
        return ""
    out, cursor = [], 0
    for start, end in pre:
        if start < cursor:
            continue
        out.append(clause[cursor:start])
        nxt = [b for b in breaks if b >= end]
        cursor = min(nxt) if nxt else len(clause)
    out.append(clause[cursor:])
    return " ".join(out)


def read_genres(text: str) -> Reading:
    """Genres only: the scan with the genre cue finder."""
    return scan(text)
