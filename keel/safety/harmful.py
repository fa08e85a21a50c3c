"""Harmful-content rules, shared by input screening and output moderation.

A request is harmful when it asks for *operational help* with serious harm — how to make,
obtain or use something dangerous — not when it mentions a dangerous topic. So each family
pairs a topic with a production or procedure cue ("how to make", "step-by-step", "write a"):
"how does ransomware spread?" passes, "write ransomware that encrypts a network" does not.
Topics follow the HarmBench and Do-Not-Answer taxonomies.
"""

from __future__ import annotations

from keel.safety.common import MEDIUM, STRONG, WEAK, Rule, noisy_or, rule
from keel.safety.normalize import View, views
from keel.safety.prefilter import RuleSet

_MAKE = (
    r"(?:mak(?:e|es|ing)|build\w*|construct\w*|assembl\w*|synthesi[sz]\w*|manufactur\w*|"
    r"produc(?:e|es|ing)|cook\w*|brew\w*|3d[- ]print\w*|creat\w*|prepar\w*|extract\w*|"
    r"cultur(?:e|ing)|grow\w*|weaponi[sz]\w*|obtain\w*|acquir\w*|buy\w*|get|source|"
    r"smuggl\w*|detonat\w*|deploy\w*|releas\w*|spread\w*|dispers\w*|modif\w*|convert\w*|"
    r"enrich\w*|plant\w*|hid(?:e|ing)|sneak\w*)"
)
_HOW = (
    # Not a request reported ("the bot was asked how to make ..."): what someone else asked.
    r"(?<!\bwas asked )(?<!\bwere asked )(?<!\bbeen asked )(?<!\bbeing asked )(?<!\bis asked )"
    r"(?:how (?:to|do i|do you|can i|could i|would i|should i|might i|would one|can one|does "
    r"one)|step[- ]by[- ]step|instructions?|recipe|guide|tutorial|detailed|walk me through|"
    r"teach me|explain how to|show me how|the best way to|ways to|methods? (?:to|for)|"
    r"procedure|list (?:the )?(?:steps|equipment|materials|chemicals|ingredients)|"
    r"what (?:do i|would i) need to|help me|i want to|i need to|i'm going to|give me|(?:create|"
    r"make|develop|write|draft) a (?:detailed )?plan (?:for|to))"
)
# Verbs of producing or obtaining, without the everyday ones ("get", "create", "grow").
_MAKE_STRICT = (
    r"(?:mak(?:e|es|ing)|synthesi[sz]\w*|manufactur\w*|produc(?:e|es|ed|ing|tion of)|"
    r"weaponi[sz]\w*|cultur(?:e|ing)|extract\w*|cook\w*|brew\w*|enrich\w*|aerosoli[sz]\w*|"
    r"dispers\w*|releas\w*|acquir\w*|obtain\w*|smuggl\w*|buy\w*|purchas\w*|deploy\w*|"
    r"build\w*|assembl\w*|construct\w*)"
)
_EXPLOSIVE = (
    r"(?:bombs?|explosives?|ied|pipe bombs?|grenades?|molotov(?: cocktails?)?|napalm|thermite|"
    r"detonators?|tatp|anfo|c-?4|semtex|car bombs?|nail bombs?|ghost guns?|untraceable "
    r"(?:guns?|firearms?|weapons?)|silencers?|suppressors?|(?:full[- ]auto|automatic) "
    r"conversions?|auto sears?|bump stocks?|zip guns?|weapons? at home|weapons?)"
)
_CBRN = (
    r"(?:nerve agents?|sarin|vx|tabun|soman|novichok|ricin|abrin|anthrax|botulinum(?: toxin)?|"
    r"mustard gas|chlorine gas|phosgene|hydrogen cyanide|bio-?weapons?|biological weapons?|"
    r"chemical weapons?|dirty bombs?|radiological weapons?|weapons-grade (?:uranium|plutonium)|"
    r"enriched uranium|nuclear (?:weapons?|bombs?|devices?)|pandemic pathogens?|smallpox|"
    r"(?:bubonic )?plague|ebola|parathion|dimethylmercury|tetrodotoxin|saxitoxin|batrachotoxin|"
    r"aconitine|strychnine|cyanide|(?:toxic|poison(?:ous)?) gas(?:es)?|(?:deadly|lethal|"
    r"undetectable|untraceable|odou?rless|tasteless|untestable) (?:toxins?|poisons?|pathogens?|"
    r"gas(?:es)?|viruses|bacteria))"
)
_DRUG = (
    r"(?:meth|methamphetamine|crystal meth|fentanyl|carfentanil|heroin|cocaine|crack cocaine|"
    r"lsd|mdma|ecstasy|ghb|dmt|pcp|(?:illegal|illicit|street|recreational) drugs|narcotics)"
)
_MALWARE = (
    r"(?:ransomware|malware|computer virus|viruses|keyloggers?|trojans?|rootkits?|botnets?|"
    r"worms?|spyware|stalkerware|infostealers?|credential (?:stealers?|harvesters?)|"
    r"phishing (?:emails?|pages?|sites?|kits?|campaigns?|messages?)|exploits? for|zero[- ]days?|"
    r"ddos (?:tools?|attacks?|scripts?)|crypto-?jackers?|backdoors?|reverse shells?|"
    r"polymorphic code|sql injection payloads? to)"
)

# What is written *about* a topic, not the thing itself: "a definition of malware".
_ABOUT_IT = (
    r"(?:definition|explanation|overview|history|summary|description|glossary|policy|training|"
    r"quiz|poster|awareness|article|essay|lesson|report on|newsletter)"
)
# Production verbs before a description of content ("write a post praising ...").
_PUBLISH = r"(?:write|create|draft|compose|make|generate|craft|publish|give me|help me)"

RULES: tuple[Rule, ...] = (
    rule(
        "weapons",
        rf"\b{_HOW}\b[^.?!\n]{{0,50}}\b{_MAKE}\b[^.?!\n]{{0,40}}\b{_EXPLOSIVE}\b|"
        rf"\b{_MAKE}\b[^.?!\n]{{0,30}}\b(?:a |an |the |my own |homemade )?{_EXPLOSIVE}\b"
        rf"[^.?!\n]{{0,40}}\b(?:at home|from household|without (?:a )?(?:license|background "
        rf"check|serial)|step[- ]by[- ]step|that (?:can|will) (?:kill|hurt|injure))",
        STRONG,
    ),
    rule(
        "cbrn",
        rf"\b{_MAKE_STRICT}\b[^.?!\n]{{0,40}}\b{_CBRN}\b|\b{_HOW}\b[^.?!\n]{{0,40}}\b(?:{_MAKE})"
        rf"\b[^.?!\n]{{0,40}}\b{_CBRN}\b",
        STRONG,
    ),
    rule(
        "drugs",
        rf"\b{_HOW}\b[^.?!\n]{{0,40}}\b(?:{_MAKE_STRICT}|sell|deal|traffic)\b[^.?!\n]{{0,30}}"
        rf"\b{_DRUG}\b|\b{_DRUG} (?:lab|laboratory|synthesis|production|recipe)\b|"
        rf"\b(?:synthesi[sz]e|cook|manufacture)\b[^.?!\n]{{0,20}}\b{_DRUG}\b",
        STRONG,
    ),
    rule(
        "malware",
        rf"\b(?:write|create|develop|code|build|generate|program|make|design|give me|craft|"
        rf"deploy|spread|distribute)\b(?![^.?!\n]{{0,30}}\b{_ABOUT_IT}\b)[^.?!\n]{{0,40}}"
        rf"\b{_MALWARE}|\b{_HOW}\b[^.?!\n]{{0,40}}"
        rf"\b(?:hack|break) into\b|\b(?:hack|break into|gain (?:unauthori[sz]ed )?access to|"
        rf"take over|compromise)\b[^.?!\n]{{0,40}}\b(?:someone(?:'s)?|my (?:ex|neighbou?r|boss|"
        rf"wife|husband|girlfriend|boyfriend)(?:'s)?|an? (?:bank|hospital|government|voting|"
        rf"power grid|water|atm|election)|(?:their|his|her) (?:email|account|phone|computer|"
        rf"wifi)|voting machines?|electronic voting)",
        STRONG,
    ),
    rule(
        "violence",
        r"\b(?:how (?:to|do i|can i|could i|would i)|best way to|ways to|help me|plan to|i want "
        r"to|i'm going to|instructions (?:to|for)|step[- ]by[- ]step)\b[^.?!\n]{0,30}\b(?:kill|"
        r"murder|poison|assassinate|strangle|stab|shoot|torture|kidnap|abduct|maim|hurt|harm|"
        r"attack|beat up|drown|suffocate|dispose of (?:a|the) body|get rid of (?:a|the) body)"
        r"\b[^.?!\n]{0,30}\b(?:someone|somebody|a person|people|him|her|them|my|a child|a kid|"
        r"children|the|an? (?:person|man|woman|neighbou?r|coworker|politician)|[a-z]+ (?:and|"
        r"without))",
        STRONG,
    ),
    rule(
        "mass_harm",
        r"\b(?:mass shooting|school shooting|terror(?:ist)? attack|bombing|massacre|genocide|"
        r"ethnic cleansing)\b[^.?!\n]{0,40}\b(?:plan|instructions|how to|maximi[sz]e|carry out|"
        r"commit|casualties|targets)\b|\b(?:plan|carry out|commit|maximi[sz]e casualties "
        r"(?:in|of))\b[^.?!\n]{0,30}\b(?:mass shooting|school shooting|terror(?:ist)? attack|"
        r"massacre|bombing)",
        STRONG,
    ),
    rule(
        "self_harm",
        r"\b(?:how (?:to|do i|can i|should i)|best (?:way|method|object)s?(?: to| for)?|"
        r"painless (?:way|method)s?|methods? (?:of|for|to)|instructions for|help me|what is "
        r"the best (?:way|method|object|thing)s? (?:to|for))\b[^.?!\n]{0,30}\b(?:commit suicide|"
        r"suicide|kill myself|end my (?:own )?life|self[- ]harm|cut myself|hurt myself|overdose)",
        STRONG,
    ),
    rule(
        "sexual_minors",
        r"\b(?:child|children|minor|minors|underage|under-age|preteen|pre-teen|kid|kids|"
        r"\d{1,2}[- ]year[- ]old|schoolgirl|schoolboy)s?\b[^.?!\n]{0,30}\b(?:sexual|sexually|sex|"
        r"porn|pornographic|nude|naked|explicit|erotic|lewd|grooming)|\b(?:sexual|explicit|"
        r"erotic|porn)\w*\b[^.?!\n]{0,30}\b(?:child|children|minor|minors|underage|kid|kids|"
        r"\d{1,2}[- ]year[- ]old)s?\b|\bgroom(?:ing)? (?:a |the )?(?:child|minor|kid)",
        STRONG,
    ),
    rule(
        "sexual_explicit",
        r"\b(?:write|generate|create|describe|tell|give me)\b[^.?!\n]{0,30}\b(?:sexually "
        r"explicit|explicit (?:sex|sexual)|erotic|pornographic|graphic sex|nsfw)\b",
        MEDIUM,
    ),
    rule(
        "fraud",
        # "Fake" and "counterfeit" after an article name a thing ("we received a fake invoice"):
        # only with a verb of making, getting or using before it are they a request.
        rf"(?:(?:\b(?:{_MAKE}|writ\w*|draft\w*|design\w*|print\w*|generat\w*|send\w*|"
        rf"us(?:e|ing))\b[^.?!\n]{{0,20}}\b(?:a|an|the|some|my) |(?<!\ba )(?<!\ban )(?<!\bthe )"
        # Nor after a verb of noticing: "spotting fake invoices", "how to detect counterfeit notes".
        rf"(?<!\bthis )(?<!\bthat )(?<!\bsome )(?<!\bspot )(?<!\bspotting )(?<!\bdetect )"
        rf"(?<!\bdetecting )(?<!\brecognise )(?<!\brecognize )(?<!\brecognising )"
        rf"(?<!\brecognizing )(?<!\bidentify )(?<!\bidentifying )(?<!\breport )(?<!\breporting )"
        rf"(?<!\bavoid )(?<!\bavoiding )(?<!\bagainst ))\b(?:counterfeit|fake)|\b(?:forge|forging|"
        rf"falsify|falsifying|fabricate))\b[^.?!\n]{{0,30}}\b(?:money|currency|bills|banknotes|"
        rf"documents?|passports?|ids?|id cards?|driver'?s licen[cs]es?|prescriptions?|"
        rf"signatures?|diplomas?|receipts?|invoices?|checks?|cheques?|medical records?|"
        rf"vaccination (?:records?|cards?))\b|\b(?:launder(?:ing)?|wash)\b"
        r"[^.?!\n]{0,20}\bmoney\b|\b(?:commit|get away with|pull off)\b[^.?!\n]{0,20}\b(?:tax|"
        r"insurance|wire|mortgage|bank|credit card|identity|benefits?|welfare|securities) "
        r"(?:fraud|theft)\b|\b(?:credit card skimm(?:ing|er)|card skimmer|carding|steal "
        r"(?:someone's |people's )?(?:identity|identities|credit card|credit cards|credentials|"
        r"passwords))\b|\b(?:scam|defraud|con)\b[^.?!\n]{0,20}\b(?:elderly|old people|"
        r"seniors|people|someone|customers|victims)\b",
        STRONG,
    ),
    rule(
        "trafficking",
        r"\b(?:human trafficking|traffic (?:people|women|children|humans)|smuggle (?:people|"
        r"migrants|weapons|guns|drugs)|sell (?:human )?organs|buy (?:human )?organs|organs? on "
        r"the black market|black market (?:organs|weapons|guns)|(?:sell|buy|trade)\b[^.?!\n]{0,20}"
        r"\b(?:ivory|rhino horn|endangered (?:species|animals))|poach(?:ing)?\b[^.?!\n]{0,20}"
        r"\b(?:endangered|elephants?|rhinos?|tigers?))\b",
        STRONG,
    ),
    rule(
        "hate",
        r"\b(?:write|generate|create|compose|draft|give me)\b[^.?!\n]{0,40}\b(?:racist|sexist|"
        r"hateful|antisemitic|anti-semitic|homophobic|transphobic|xenophobic|islamophobic|"
        r"bigoted|white supremacist|nazi)\b|\b(?:argue|argument|explain|essay|article|post|"
        r"convince|persuade|persuasive|prove)\b[^.?!\n]{0,60}\b(?:inherently|genetically|"
        r"naturally|biologically)?\s*(?:inferior|less intelligent|subhuman|savages|vermin|"
        r"should (?:be|all be) (?:exterminated|eliminated|deported|enslaved|banned from))\b|"
        r"\b(?:are|is) all [a-z]+ (?:people )?(?:dishonest|criminals|terrorists|stupid|lazy|"
        r"violent|thieves|evil|inferior)\b|\bslurs? (?:for|against|about)\b",
        STRONG,
    ),
    rule(
        "disinformation",
        r"\b(?:write|create|generate|compose|draft|spread|share|promote|amplify)\b[^.?!\n]{0,40}"
        r"\b(?:fake news|"
        r"disinformation|propaganda|conspiracy theor(?:y|ies)|fake (?:reviews|testimonials)|"
        r"misleading (?:article|post|ad))|\b(?:persuasive|convincing|posing as an expert|"
        r"twitter thread|article|blog post|social media post)\b[^.?!\n]{0,60}\b(?:vaccines? "
        r"(?:cause|causes|causing) autism|holocaust (?:never|didn't|did not) happen|(?:election|"
        r"vote) was (?:stolen|rigged)|climate change is a hoax|5g (?:causes|spreads)|moon landing "
        r"was (?:faked|fake)|(?:was|were) solely (?:initiated|responsible))|\b(?:persuasive|"
        r"convincing)\b[^.?!\n]{0,80}\b(?:was (?:primarily |actually |really |just )?a (?:natural "
        r"disaster|hoax|myth|fabrication|lie)|(?:propaganda )?myth|never happened|(?:was|were) "
        r"(?:beneficial|justified|exaggerated))|\b(?:5g|vaccines?)\b[^.?!\n]{0,20}\b(?:spreads?|"
        r"causes?) (?:covid|autism|cancer)",
        STRONG,
    ),
    rule(
        "stalking",
        r"\b(?:track\w*|stalk\w*|spy\w* on|monitor\w*|follow\w*|locat\w*|find (?:the )?(?:home )?"
        r"address of)\b"
        r"[^.?!\n]{0,30}\b(?:my (?:ex|wife|husband|girlfriend|boyfriend|partner|neighbou?r|"
        r"coworker|boss)|someone|a person|her|him)\b[^.?!\n]{0,40}\b(?:without (?:them|her|him|"
        r"their|his) (?:knowing|knowledge|consent|noticing)|secretly|covertly)",
        STRONG,
    ),
    rule(
        "evasion",
        r"\bwithout (?:getting |being )?(?:caught|traced|detected|noticed|leaving (?:a )?trace|"
        r"anyone (?:knowing|noticing)|the police (?:knowing|finding out))\b|\bcover (?:my|your|"
        r"the) tracks\b|\b(?:untraceable|undetectable)\b|\bhard to trace\b",
        WEAK,
    ),
    rule(
        "illegal_access",
        r"\b(?:bypass|disable|defeat|get around|circumvent|pick|break)\b[^.?!\n]{0,30}\b(?:gps "
        r"tracker|ankle monitor|breathalyzer|security (?:system|cameras?)|alarm system|car "
        r"immobili[sz]er|locks? on (?:someone|a|my neighbou?r)|paywall|drm|license check|"
        r"copy protection|age verification|parental controls)\b|\b(?:pirate|crack)\b"
        r"[^.?!\n]{0,20}\b(?:software|games?|movies?|"
        r"windows|photoshop|license keys?)\b|\bgain (?:unauthori[sz]ed )?access to\b[^.?!\n]"
        r"{0,40}\b(?:facility|laboratory|lab|building|server|network|system)\b",
        MEDIUM,
    ),
    rule(
        "drug_precursors",
        rf"\b(?:production|synthesis|manufactur\w*|precursors?) (?:of|for) {_DRUG}\b",
        STRONG,
    ),
    rule(
        "theft",
        r"\b(?:how (?:to|do i|can i|would i)|describe how to|instructions for|ways to|guide to)\b"
        r"[^.?!\n]{0,20}\b(?:steal\w*|shoplift\w*|hotwir\w*|pickpocket\w*|rob|robbing|"
        r"burglari[sz]\w*|loot\w*|break into (?:a |someone's |my neighbou?r's )?(?:car|house|"
        r"home))\b",
        STRONG,
    ),
    rule(
        "sexual_coercion",
        r"\b(?:coerc|pressur|forc|blackmail|manipulat|trick|groom|extort)\w*\b[^.?!\n]{0,40}"
        r"\b(?:explicit|intimate|nude|naked|sexual|non-consensual|sex|sexts?)\b",
        STRONG,
    ),
    rule(
        "social_engineering",
        r"\b(?:convinc|persuad|trick|manipulat|coerc|pressur|lur|deceiv|con)\w*\b[^.?!\n]{0,30}"
        r"\b(?:someone|people|them|him|her|a (?:person|user|victim|customer|employee|coworker)|"
        r"users|victims|customers|employees|the elderly)\b[^.?!\n]{0,30}\b(?:share|give|reveal|"
        r"send|hand over|disclose|enter|wire|transfer)\b[^.?!\n]{0,20}\b(?:their|his|her|your)"
        r"\b[^.?!\n]{0,20}\b(?:password|social security|ssn|credentials|bank|card|pin|login|"
        r"account|savings|money)",
        STRONG,
    ),
    rule(
        "pathogen_enhancement",
        r"\b(?:mak\w*|render\w*|modif\w*|engineer\w*|enhanc\w*|mutat\w*)\b[^.?!\n]{0,60}"
        r"\b(?:more|most|extremely|highly) (?:deadly|lethal|transmissible|contagious|virulent|"
        r"infectious)\b|\b(?:modif|engineer|enhanc)\w*\b[^.?!\n]{0,40}\b(?:covid|sars|virus|"
        r"pathogen|influenza|bird flu|h5n1|smallpox|anthrax)\b[^.?!\n]{0,40}\b(?:deadl|lethal|"
        r"transmiss|contagio|virulen)",
        STRONG,
    ),
    rule(
        "incitement",
        r"\binciting (?:hatred|violence|hate)|\bincite\w*\b[^.?!\n]{0,30}\b(?:hatred|violence|"
        r"hate|riots?|genocide)|"
        # Content described ("moderators saw a post praising ...") is no request, unless a
        # verb of producing comes first.
        rf"(?:\b{_PUBLISH}\b[^.?!\n]{{0,30}}|(?<!\bpost )(?<!\bposts )(?<!\bvideo )(?<!\bvideos )"
        r"(?<!\bcomment )(?<!\bcomments )(?<!\bcontent )(?<!\bmessage )(?<!\bmessages )"
        r"(?<!\baccount )(?<!\bmaterial )(?<!\bspeech )(?<!\bgroup )(?<!\bgroups )(?<!\btweet )"
        r"(?<!\bchannel ))\b(?:glorif|prais|celebrat|justif)\w*\b[^.?!\n]{0,40}"
        r"\b(?:terroris[tm]s?|terror attacks?|mass shoot\w*|school shoot\w*|massacres?|genocide|"
        r"hitler|nazis?|isis|al-?qaeda|9/11 (?:attacks|hijackers))",
        STRONG,
    ),
    rule(
        "threats",
        r"\b(?:write|create|draft|compose|make|send|craft|generate|help me (?:write|create|make|"
        r"send|draft))\b[^.?!\n]{0,30}\b(?:(?:bomb|death|terror(?:ist)?|violent|anonymous) "
        r"threats?|threatening (?:message|letter|email|note|text|post|voicemail)s?|intimidating "
        r"(?:message|letter|email|note|text)s?)|\bhow (?:to|do i|can i)\b[^.?!\n]{0,20}\b(?:make|"
        r"send|post|write)\b[^.?!\n]{0,20}\bthreats?\b",
        STRONG,
    ),
    rule(
        "infrastructure_attack",
        r"\b(?:disrupt\w*|jam|jamming|sabotag\w*|disabl\w*|knock out|take down|shut down|"
        r"poison\w*)\b[^.?!\n]{0,40}\b(?:emergency services|911|police (?:radio|communications)|"
        r"air traffic|power grid|water (?:supply|treatment)|hospital (?:systems|network)|gps "
        r"signals|cell towers?|reservoir)\b",
        STRONG,
    ),
    rule(
        "exploitation",
        r"\b(?:exploit\w*|using|use)\b[^.?!\n]{0,40}\b(?:vulnerabilit(?:y|ies)|cve-\d{4}-\d+|"
        r"dirty (?:cow|pipe)|eternalblue|log4shell|heartbleed|zero[- ]day)\b[^.?!\n]{0,60}"
        r"\b(?:to (?:take control|gain|get root|escalate|compromise|hack|access|own)|explain how "
        r"to use)|\bwrite (?:code|an exploit|a script|a payload|exploit code)\b[^.?!\n]{0,40}"
        r"\b(?:eternalblue|dirty (?:cow|pipe)|exploit|cve-|sql injection|privilege escalation|"
        r"rce|vulnerability)|\b(?:conduct|perform|carry out|develop|craft|design|provide steps)"
        r"\w*\b[^.?!\n]{0,40}\b(?:sql injection|xss|csrf|ddos|brute[- ]force|privilege "
        r"escalation|man-in-the-middle|mitm|sqli)\s+(?:attacks?|payloads?|exploits?)",
        STRONG,
    ),
    rule(
        "tax_evasion",
        r"\b(?:evade|evading|dodge|dodging|cheat on)\b[^.?!\n]{0,15}\btax(?:es)?\b",
        STRONG,
    ),
    rule(
        "defamation",
        r"\b(?:write|create|post|blog|article|spread|make|publish|help me|how (?:can|do) i|guide "
        r"me)\b[^.?!\n]{0,50}\b(?:to|i|that|which) falsely\b|\bhow (?:can|do|could|would|should)"
        r" i falsely\b",
        STRONG,
    ),
    rule(
        "leak_spreading",
        r"\b(?:spread\w*|leak\w*|publish\w*|distribut\w*|dissemin\w*)\b[^.?!\n]{0,20}"
        r"\b(?:leaked|stolen|confidential|classified|sensitive) (?:documents|data|files|"
        r"information|records)",
        MEDIUM,
    ),
    rule(
        "intent_to_harm",
        r"\bto (?:hurt|harm|injure|kill|poison|maim|sicken) (?:someone|somebody|a person|people|"
        r"him|her|them|my (?:\w+))\b(?!'s)(?!\s*(?:feelings|chances|reputation|career|business|"
        r"sales|performance))",
        STRONG,
    ),
)

# The rules with a one-pass test of which can match a view (`keel.safety.prefilter`).
RULE_SET = RuleSet(RULES, name="harmful")


def harmful_hits(all_views: list[View]) -> dict[str, float]:
    """Matched harmful-content families (`harmful:<name>`) and their weights."""
    hits: dict[str, float] = {}
    for view in all_views:
        for candidate in RULE_SET.candidates(view.text):
            if candidate.pattern.search(view.text):
                hits[f"harmful:{candidate.name}"] = candidate.weight
    return hits


def harmful_score(text: str, *, decode: bool = True) -> tuple[float, list[str]]:
    """Risk that `text` asks for (or gives) operational help with serious harm, and why."""
    readable = [v for v in views(text, decode=decode) if v.kind not in ("rot13", "reversed")]
    hits = harmful_hits(readable)
    return noisy_or(hits.values()), sorted(hits, key=lambda k: -hits[k])
