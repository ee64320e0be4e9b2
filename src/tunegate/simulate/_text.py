"""Ticket text for the service-desk simulation: intents, phrasings, slot fillers and noise.

Each *kind* is a (label, scenario) pair with many phrasings; slots in braces are filled from
the pools below. Phrasings deliberately share vocabulary across classes ("locked", "password",
"access", "email", "MFA" appear in several), so no class is decided by one keyword. The MFA
kinds carry the planted signal: an MFA *security incident* is phrased as a lockout plus an
unrequested prompt, a routine MFA *enrolment* lockout is phrased as a lockout plus a new phone or
a setup step, and an MFA *VPN* problem is phrased as a remote-access failure around the prompt.
"""

# ruff: noqa: E501  (ticket phrasings are data; one phrasing a line reads best)
from __future__ import annotations

import random
import re
from typing import Final

__all__ = ["KINDS", "Kind", "compose", "fill", "terse", "typos"]


class Kind:
    """One intent: its ground-truth label, scenario name and phrasings."""

    def __init__(
        self,
        name: str,
        label: str,
        phrasings: list[str],
        *,
        mfa: bool = False,
        policy: bool = False,
        vague: bool = False,
    ) -> None:
        self.name = name
        self.label = label
        self.phrasings = phrasings
        self.mfa = mfa
        self.policy = policy
        self.vague = vague


POOLS: Final[dict[str, list[str]]] = {
    "system": [
        "SAP",
        "Workday",
        "Salesforce",
        "the HR portal",
        "Jira",
        "Confluence",
        "ServiceNow",
        "the finance system",
        "my laptop",
        "Windows",
        "the intranet",
        "Teams",
        "Citrix",
        "the payroll app",
        "Oracle",
        "the CRM",
    ],
    "app": [
        "Visio",
        "Power BI",
        "Tableau",
        "Python 3.12",
        "Adobe Acrobat Pro",
        "AutoCAD",
        "Zoom",
        "Slack",
        "Notepad++",
        "VS Code",
        "R Studio",
        "Snagit",
        "7-Zip",
        "MATLAB",
        "Docker Desktop",
        "Chrome",
        "Firefox",
        "SPSS",
        "Miro",
        "Postman",
    ],
    "device": [
        "laptop",
        "ThinkPad",
        "MacBook",
        "desktop",
        "Surface",
        "work phone",
        "monitor",
        "docking station",
        "headset",
        "webcam",
        "keyboard",
        "tablet",
    ],
    "computer": ["laptop", "ThinkPad", "MacBook", "desktop", "Surface", "PC"],
    "printer": [
        "printer",
        "big Ricoh printer",
        "HP printer",
        "colour printer",
        "label printer",
        "plotter",
    ],
    "vpn_client": [
        "GlobalProtect",
        "AnyConnect",
        "the VPN client",
        "FortiClient",
        "the VPN",
        "Pulse Secure",
        "the remote access client",
    ],
    "mfa_app": [
        "Microsoft Authenticator",
        "the authenticator app",
        "Okta Verify",
        "Duo",
        "the MFA app",
        "Google Authenticator",
        "the 2FA app",
    ],
    "site": [
        "London",
        "Manchester",
        "Leeds",
        "Pune",
        "Austin",
        "Krakow",
        "Dublin",
        "Singapore",
        "Lisbon",
        "Toronto",
    ],
    "folder": [
        "Finance",
        "Marketing",
        "Project Atlas",
        "HR Policies",
        "Legal",
        "Q3 Reporting",
        "Procurement",
        "Engineering",
        "Board Papers",
        "Sales EMEA",
    ],
    "name": [
        "Priya",
        "Tom",
        "Aisha",
        "Marek",
        "Chloe",
        "Dev",
        "Sofia",
        "James",
        "Wei",
        "Olu",
        "Hannah",
        "Rahul",
        "Lucia",
        "Ben",
        "Fatima",
        "Kasia",
        "Liam",
        "Mei",
    ],
    "surname": [
        "Patel",
        "Nowak",
        "Smith",
        "Okafor",
        "Garcia",
        "Chen",
        "Murphy",
        "Kowalski",
        "Singh",
        "Brown",
        "Silva",
        "Jones",
    ],
    "country": [
        "Brazil",
        "Russia",
        "Nigeria",
        "Vietnam",
        "Romania",
        "the Netherlands",
        "an IP in China",
        "Ukraine",
        "Indonesia",
    ],
    "time": ["2am", "3am", "midnight", "4:30 this morning", "11pm", "1am", "5am", "lunchtime"],
    "days": ["3", "5", "7", "10", "14"],
    "code": ["0x80070005", "1603", "E-212", "SC3", "0x800CCC0E", "404", "52", "C4-11", "1722"],
    "external": [
        "a supplier",
        "our auditors",
        "a client",
        "gmail addresses",
        "the bank",
        "the recruitment agency",
        "a partner company",
    ],
    "mailbox": [
        "finance-invoices",
        "hr-queries",
        "support",
        "sales-leads",
        "reception",
        "payroll",
        "projects",
    ],
    "floor": ["2", "3", "4", "5", "6", "ground"],
    "group": ["all-staff-uk", "engineering-leads", "project-atlas", "finance-team", "sales-emea"],
    "n": ["2", "3", "4", "5", "6", "7", "8", "10", "12", "15", "20", "30"],
    "role": [
        "Analyst",
        "Accountant",
        "Project Manager",
        "Engineer",
        "Sales Executive",
        "HR Advisor",
        "Team Lead",
        "Developer",
        "Buyer",
        "Paralegal",
    ],
    "new_client": [
        "Zscaler",
        "the Zscaler app",
        "ZPA",
        "Zscaler Client Connector",
        "the new Zscaler connector",
    ],
}

_K = Kind

KINDS: Final[dict[str, Kind]] = {
    k.name: k
    for k in [
        # -- account_unlock ------------------------------------------------------------------
        _K(
            "unlock",
            "account_unlock",
            [
                "my account is locked after too many wrong password attempts",
                "I'm locked out of {system}, it says the account is locked, can you unlock it please",
                "can't log in to my {computer}, it says the referenced account is currently locked out",
                "I typed my password wrong a few times and now Windows won't let me in at all",
                "{system} says account locked, I know my password is right, please unlock me",
                "please unlock the user account for {name} {surname}, locked out after the weekend",
                "locked out again. third time this week. can someone unlock my account",
                "{system} shows too many failed sign-in attempts, try again later. it has been an hour",
                "my domain account keeps locking, I think my old phone still has the old password saved",
                "account locked out, need it unlocked asap so I can work",
                "I got locked out of {system} after the password change, it won't let me sign in",
                "it says my user is locked and to contact the administrator",
                "can you unlock my login, I tried too many times this morning",
                "my account got locked while I was on holiday and still is",
                "sign-in blocked: your account has been locked. please help",
                "login fails with 'user account locked', nothing I do works",
                "I'm locked out of my PC, failed attempts I guess, need an unlock",
                "keep getting locked out every few minutes even after I type the right password",
            ],
        ),
        _K(
            "mfa_enrol",
            "account_unlock",
            [
                "got a new phone and {mfa_app} didn't transfer, now I'm locked out of my account",
                "I'm setting up MFA for the first time and after entering the code wrong a few times "
                "my account locked",
                "lost my phone so I can't get the MFA code, locked out of my account, please unlock "
                "and reset my MFA",
                "reinstalled {mfa_app} and now the codes don't work, account locked after too many tries",
                "the QR code enrolment page for MFA timed out and now my account is locked",
                "MFA registration failed, I entered the verification code too many times, please unlock",
                "changed phones yesterday and never moved {mfa_app} over, now it wants a code and I'm "
                "locked out",
                "my phone was reset to factory settings and the authenticator is gone, can't sign in, "
                "account locked",
                "new starter, trying to enrol in MFA but it locked me out after the setup code failed",
                "I registered the wrong phone number for 2FA and now I'm locked out, can you reset it",
                "the MFA setup wizard keeps failing on step 2 and now my login says locked",
                "broke my phone screen, can't open {mfa_app}, locked out, need my MFA method reset",
                "I uninstalled the authenticator by mistake, now the sign-in wants a code I can't get "
                "and the account is locked",
                "upgraded to a new iPhone and the 2FA codes don't match anymore, locked out",
            ],
            mfa=True,
        ),
        # -- password_reset ------------------------------------------------------------------
        _K(
            "reset",
            "password_reset",
            [
                "I forgot my password for {system}, can you reset it",
                "my password expired while I was on leave and I can't change it",
                "need a password reset for {system} please",
                "the self-service reset page says my security answers are wrong",
                "got a notice that my password expires in {days} days, the change password screen errors",
                "new starter, never received my initial password for {system}",
                "can you send me a temporary password, I can't remember the one I set on Friday",
                "forgot my password again, sorry. please reset",
                "password expired, it asks me to change it but says the new one doesn't meet the rules",
                "I can't remember my {system} password and the reset link never arrives",
                "I'm locked out because I forgot my password, please reset it",
                "reset my password please, it stopped working after I changed it on my phone",
                "my password doesn't work since this morning, I think it expired overnight",
                "I need to change my password but the option is greyed out",
                "the password reset email link says expired when I click it",
                "please set a new password for {name} {surname}, they forgot theirs",
            ],
        ),
        # -- vpn_issue -----------------------------------------------------------------------
        _K(
            "vpn",
            "vpn_issue",
            [
                "VPN keeps disconnecting every few minutes when working from home",
                "{vpn_client} won't connect, it just spins on connecting",
                "can't reach any internal sites from home, remote access isn't working",
                "the tunnel drops whenever I join a Teams call from home",
                "{vpn_client} says gateway unreachable when I try the {site} gateway",
                "working remotely today and can't get onto the network drives, connecting to the office "
                "network fails",
                "remote access is super slow, everything times out",
                "{vpn_client} connects but then I can't open anything internal",
                "I can't connect to the office from the hotel wifi, the connection is refused",
                "VPN error {code} when connecting from home",
                "since the update {vpn_client} crashes as soon as I click connect",
                "remote connection drops every half hour and I lose my work",
                "can't log on to the VPN from abroad, it just fails",
                "my home connection is fine but the secure connection to work won't come up",
                "the {site} VPN gateway keeps kicking me off",
                "connected to {vpn_client} but the intranet and shared drives don't load",
            ],
        ),
        _K(
            "mfa_vpn",
            "vpn_issue",
            [
                "{vpn_client} asks for my MFA code then times out before I can enter it",
                "VPN login hangs after I approve the push on my phone",
                "since MFA started, remote access never sends the push prompt, just says connection "
                "failed",
                "when connecting from home the verification code screen appears then the tunnel drops",
                "{mfa_app} approves but the remote access gateway says authentication timeout",
                "working from home: after approving the sign-in on my phone, the connection to the office "
                "network fails",
                "{vpn_client} wants a one-time code now but the code field disappears and it disconnects",
                "I approve the MFA request and {vpn_client} still says login failed, tried 5 times",
                "the VPN keeps asking for the 2FA code every 10 minutes and drops the connection",
                "remote access prompts for the authenticator code and then gives error {code}",
                "can't connect from home since the MFA change, the push arrives late and the session "
                "times out",
                "{vpn_client} rejects the verification code from {mfa_app}, connection refused",
            ],
            mfa=True,
        ),
        # -- security_incident ---------------------------------------------------------------
        _K(
            "security",
            "security_incident",
            [
                "I got an email asking me to confirm my payroll details, looks like phishing, I clicked "
                "the link",
                "there's a sign-in to my account from {country} that wasn't me",
                "my antivirus popped up saying it quarantined a trojan",
                "I think my account has been hacked, emails were sent from it that I didn't write",
                "someone called pretending to be IT and asked for my password, I gave it to them",
                "found a USB stick in the meeting room and plugged it in, now there are odd popups",
                "received a suspicious email with an invoice attachment and opened it",
                "files on the shared drive were renamed with a strange extension and won't open",
                "a colleague's account is sending weird links to everyone in Teams",
                "I entered my login on a page that looked like our portal but the address was wrong",
                "my browser opens pages by itself and the antivirus is disabled",
                "got a text pretending to be the CEO asking me to buy gift cards urgently",
                "security alert from {system} about a login from a new device I don't own",
                "I clicked a link in an email about a parcel and it downloaded something, could be malware",
                "there's software on my {computer} I didn't install and it's using the webcam",
                "our shared mailbox forwarded all mail to an outside address nobody set up",
            ],
        ),
        _K(
            "mfa_security",
            "security_incident",
            [
                "I keep getting push prompts I didn't request and now I'm locked out",
                "{mfa_app} keeps asking me to approve sign-ins at {time}, I wasn't trying to log in. "
                "now my account is locked",
                "got about {n} MFA notifications overnight, I pressed approve on one by accident to make "
                "it stop. now I can't get in",
                "received a verification code by text that I never asked for and then my account locked",
                "authenticator asking me to approve a login but I wasn't signing in. denied it but it "
                "keeps coming, now it says locked",
                "someone keeps triggering 2FA codes on my phone, locked out of {system} since this morning",
                "phone buzzing with approval requests all night, I didn't start any of them. locked out "
                "now",
                "I approved an MFA request thinking it was mine, then got locked out and my password "
                "doesn't work anymore",
                "a number matching prompt showed a number I didn't see anywhere, I said no and now my "
                "account is locked",
                "getting MFA pushes every few minutes even when I'm not logging in, and now I'm locked "
                "out of {system}",
                "{mfa_app} notification at {time} for a login I didn't make, then account locked",
                "lots of 'approve sign-in?' requests on my phone that weren't me, can't log in now",
                "I keep getting security codes texted to me that I didn't ask for, and my account is "
                "now locked",
                "the authenticator keeps popping up with requests I never made, I'm locked out, please "
                "help",
                "my phone got {n} push requests while I was asleep, I didn't log in anywhere, now "
                "locked",
                "I accidentally tapped approve on a 2FA prompt I didn't trigger and now I'm locked out",
                "I think someone is trying to get into my account, {mfa_app} keeps asking me to approve "
                "and now I'm locked out",
                "MFA push requests that are not me, could my account be compromised? it's locked now",
                "got a sign-in approval from {country} on {mfa_app}, I denied it, now my account is "
                "locked",
                "suspicious MFA prompts all evening, someone must have my password, locked out now",
                "got {n} MFA push notifications I didn't request, is someone trying to hack my account?",
                "{mfa_app} showed a sign-in request from {country}, it wasn't me, I think my password "
                "was stolen",
                "strange 2FA codes arriving by text all night, I never tried to log in, is my account "
                "compromised?",
            ],
            mfa=True,
        ),
        # -- hardware ------------------------------------------------------------------------
        _K(
            "hardware",
            "hardware",
            [
                "my laptop screen flickers and goes black",
                "the {printer} on floor {floor} is jammed and showing error {code}",
                "docking station doesn't detect my second monitor",
                "keyboard keys are sticking after I spilled coffee",
                "{computer} won't charge, battery stuck at 0%",
                "my {computer} makes a grinding noise and gets very hot",
                "mouse stopped working even with new batteries",
                "headset microphone isn't picked up on calls, tried two USB ports",
                "the {printer} prints blank pages",
                "my {computer} won't turn on at all since this morning",
                "cracked screen on my {computer}, dropped it on the train",
                "monitor shows no signal even though the cable is plugged in",
                "laptop fan is really loud and it shuts down on its own",
                "the webcam is broken, black image in every app",
                "the {printer} says toner low but it's a new cartridge",
                "my {computer} has a blue screen every time I undock it",
            ],
        ),
        # -- software_install ----------------------------------------------------------------
        _K(
            "software",
            "software_install",
            [
                "please install {app} on my laptop",
                "I need a licence for {app}, the trial expired",
                "the {app} software update fails with error {code}",
                "can I get {app} from the software centre? it's not listed",
                "{app} crashes on startup since the latest update, please reinstall it",
                "need {app} installed for a training course next week",
                "the licence key for {app} says invalid",
                "{app} is asking to update but I don't have the rights to install it",
                "could you upgrade {app} to the latest version",
                "{app} won't install, the installer closes halfway",
                "our team needs {app} installed on {n} machines",
                "uninstall {app} and put the old version back please, the new one breaks my macros",
                "{app} says the software licence has expired, please renew the licence",
                "requesting installation of {app} and {app}",
            ],
        ),
        # -- access_request ------------------------------------------------------------------
        _K(
            "access",
            "access_request",
            [
                "please give me access to the {folder} shared folder",
                "I need read access to {system} for the {folder} project, my manager approved it",
                "requesting permission to edit the {folder} SharePoint site",
                "new team member {name} {surname} needs access to {system}",
                "can't open the {folder} folder, access denied, I should have permission",
                "please add me to the {group} group so I can see the files",
                "I moved to the {folder} team, please grant me the same permissions as my colleagues",
                "need write access to the {folder} drive",
                "could you give {name} access to the {mailbox} shared mailbox",
                "requesting admin access to {system} for the audit",
                "I need to be able to approve invoices in {system}, please add the role",
                "access to the {folder} Teams channel please",
                "my access to {system} was removed after the reorg, I still need it",
                "please remove {name} {surname}'s access to {folder}, they left the team",
            ],
        ),
        # -- email_issue ---------------------------------------------------------------------
        _K(
            "email",
            "email_issue",
            [
                "my mailbox is full and I can't send emails",
                "emails from {external} are not arriving in my inbox",
                "Outlook keeps asking for my password and won't connect",
                "the {mailbox} shared mailbox disappeared from Outlook",
                "calendar invites are not syncing to my phone",
                "my sent emails are stuck in the outbox",
                "getting bounce-back messages when emailing {external}",
                "Outlook is stuck on loading profile",
                "I'm not receiving any emails since yesterday afternoon",
                "emails to {external} go to their spam, can you check",
                "my Outlook out of office reply won't turn on",
                "Outlook search doesn't find anything older than a week",
                "I can't open attachments in Outlook, error {code}",
                "meeting invites I send show the wrong time zone",
                "my email signature disappeared after the update",
            ],
        ),
        # -- policy cases (R3): the text looks like one class, the policy decides another ----
        _K(
            "policy_lost_device",
            "security_incident",
            [
                "I left my {computer} on the train last night, can I get a replacement",
                "my {computer} was stolen from my car, need a new one for Monday",
                "lost my work phone at the airport, how do I order another",
                "my bag with my {computer} in it was taken at a cafe, I need a loaner",
                "can't find my {computer}, I think I left it in a taxi, please send a new one",
            ],
            policy=True,
        ),
        _K(
            "policy_contractor",
            "access_request",
            [
                "contractor {name} {surname}'s account expired today, please unlock it",
                "my contractor account is disabled because the end date passed, please unlock",
                "the temp staff account for {name} is locked since the contract ended last week, "
                "please re-enable",
                "account for our consultant {name} says expired, can you unlock it for another month",
            ],
            policy=True,
        ),
        _K(
            "policy_admin",
            "access_request",
            [
                "please install {app}, it needs admin rights on my laptop",
                "I need local admin rights to install {app}",
                "can I get temporary admin so I can install {app} myself",
                "{app} install asks for an administrator password, please grant me admin",
            ],
            policy=True,
        ),
        # -- vague (R1): a weak hint of the intent ------------------------------------------
        _K(
            "vague_account_unlock",
            "account_unlock",
            [
                "can't get in since this morning",
                "it won't let me in again, same as last week",
                "blocked from logging on, please help",
                "not able to get in to anything",
            ],
            vague=True,
        ),
        _K(
            "vague_password_reset",
            "password_reset",
            [
                "it doesn't accept my details anymore",
                "my login details stopped working",
                "the thing I type to get in isn't right apparently",
            ],
            vague=True,
        ),
        _K(
            "vague_vpn_issue",
            "vpn_issue",
            [
                "can't get on from home",
                "working from home and nothing loads",
                "the connection thing isn't working today",
            ],
            vague=True,
        ),
        _K(
            "vague_security_incident",
            "security_incident",
            [
                "something weird happened with my account, not sure if it's a problem",
                "I think I did something I shouldn't have with an email",
                "my computer is acting strange, things opening on their own",
            ],
            vague=True,
        ),
        _K(
            "vague_hardware",
            "hardware",
            [
                "my machine is acting up again",
                "the thing on my desk stopped working",
                "it makes a funny noise and then nothing",
            ],
            vague=True,
        ),
        _K(
            "vague_software_install",
            "software_install",
            [
                "the program won't open",
                "I need the tool everyone else has",
                "the app thing needs doing before Friday",
            ],
            vague=True,
        ),
        _K(
            "vague_access_request",
            "access_request",
            [
                "I need to get into the team's stuff",
                "I can't see what the others can see",
                "need the same as my colleague has please",
            ],
            vague=True,
        ),
        _K(
            "vague_email_issue",
            "email_issue",
            [
                "my messages aren't going anywhere",
                "people say they didn't get what I sent",
                "nothing new has come in since yesterday",
            ],
            vague=True,
        ),
        # -- distribution shift after deployment: a new VPN client ----------------------------
        _K(
            "vpn_client_shift",
            "vpn_issue",
            [
                "{new_client} says no policy found for this application and blocks the finance portal",
                "after the switch to {new_client} I can't reach the internal wiki, it shows a "
                "connector error",
                "{new_client} keeps asking me to re-authenticate and then blocks the app",
                "{new_client} is on but private apps say access blocked by policy",
                "since {new_client} was installed the internal sites load forever from home",
                "{new_client} shows 'app segment unreachable' for the shared drives",
                "the new connector icon is red and nothing internal opens",
                "{new_client} tunnel status 'disabled' and I can't turn it back on",
                "my access to the HR portal is denied since the new remote access app was installed",
                "{new_client} says my device posture check failed, I can't get to anything internal",
            ],
        ),
    ]
}

SECOND_TOPIC: Final[dict[str, list[str]]] = {
    "account_unlock": ["my account also got locked earlier", "and I was locked out twice today"],
    "password_reset": ["also I need my password reset", "and my password expires tomorrow"],
    "vpn_issue": ["also the VPN keeps dropping", "and remote access is slow again"],
    "security_incident": [
        "also I got a strange email with a link",
        "and there was a login alert I didn't recognise",
    ],
    "hardware": ["also my monitor flickers", "and the printer is jammed again"],
    "software_install": ["also can you install {app}", "and {app} needs an update"],
    "access_request": ["also I need access to the {folder} folder", "and please add me to {group}"],
    "email_issue": ["also Outlook is very slow", "and my mailbox is nearly full"],
}

GREETINGS: Final = [
    "Hi,",
    "Hello,",
    "Hi team,",
    "Hello IT,",
    "Good morning,",
    "Hey,",
    "Dear Service Desk,",
    "Hi there,",
    "Morning all,",
    "Hello support,",
]
CONTEXT: Final = [
    "I have a client meeting at {time} so this is urgent.",
    "I already tried restarting.",
    "My manager is {name} {surname}.",
    "I'm working from the {site} office today.",
    "This started after the update last night.",
    "It was fine yesterday.",
    "Could someone call me back?",
    "I've attached a screenshot.",
    "Not sure if this is the right queue, sorry.",
    "This is blocking my whole team.",
    "Ticket from last time was INC00{n}4{n}.",
    "I'm on extension 4{n}{n}.",
    "Please treat as high priority.",
    "Happy to do a Teams call.",
]
SIGNATURES: Final = [
    "Thanks, {name}",
    "Regards,\n{name} {surname}\n{role}, {site}",
    "Cheers {name}",
    "Thank you\n{name}",
    "Many thanks,\n{name} {surname}",
    "Sent from my iPhone",
    "Kind regards,\n{name} {surname} | {role}",
    "thx",
    "{name} ({site})",
]
PHONE_PREFIX: Final = ["Caller reports: ", "User called - ", "Phone: ", "Call from {name}: "]

_SLOT = re.compile(r"\{(\w+)\}")
_ABBREV: Final = [
    ("password", "pw"),
    ("please", "pls"),
    ("account", "acct"),
    ("because", "bc"),
    ("connection", "conn"),
    ("thanks", "thx"),
    ("you", "u"),
    ("morning", "am"),
]


def fill(template: str, rng: random.Random) -> str:
    """Replace every ``{slot}`` with a random value from its pool."""
    return _SLOT.sub(lambda m: rng.choice(POOLS[m.group(1)]), template)


def terse(text: str, rng: random.Random) -> str:
    """The night-shift register: first clause only, lower case, abbreviations, no punctuation."""
    clause = re.split(r"[.,;:]| - ", text, maxsplit=1)[0].strip() or text
    clause = clause.lower()
    for word, short in _ABBREV:
        if rng.random() < 0.6:
            clause = re.sub(rf"\b{word}\b", short, clause)
    for filler in ("i think ", "please ", "can you ", "can someone ", "just "):
        clause = clause.replace(filler, "")
    return clause.strip()


def typos(text: str, rng: random.Random, rate: float) -> str:
    """Seeded keyboard noise: per word with probability ``rate``, swap, drop or double a char."""
    if rate <= 0.0:
        return text
    out = []
    for word in text.split(" "):
        if len(word) > 3 and rng.random() < rate:
            i = rng.randrange(1, len(word) - 1)
            op = rng.randrange(3)
            if op == 0:
                word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
            elif op == 1:
                word = word[:i] + word[i + 1 :]
            else:
                word = word[:i] + word[i] + word[i:]
        out.append(word)
    return " ".join(out)


def compose(
    body: str,
    rng: random.Random,
    *,
    channel: str,
    night: bool,
    second: str | None,
    typo_rate: float,
) -> str:
    """Wrap a filled intent body in the register of its channel and shift.

    ``channel`` is one of email / portal / phone / chat; ``night`` tickets are terse; ``second``
    is an already-filled clause about another topic (two-topic tickets).
    """
    if second is not None:
        joiner = rng.choice([". Also, unrelated: ", ", ", ". Separate thing: ", "; "])
        body = f"{body}{joiner}{second}"
    if night:
        text = terse(body, rng) if second is None else body.lower()
        if rng.random() < 0.3:
            text = text.replace("i'm ", "im ").replace("can't", "cant").replace("don't", "dont")
        return typos(text, rng, typo_rate * 2)
    sentence = body[0].upper() + body[1:]
    if not sentence.endswith((".", "?", "!")):
        sentence += rng.choice([".", ".", "!", "", "?" if "can" in sentence[:12] else "."])
    parts: list[str] = []
    if channel == "phone":
        parts.append(fill(rng.choice(PHONE_PREFIX), rng) + sentence)
    elif channel == "chat":
        parts.append(sentence.lower() if rng.random() < 0.5 else sentence)
    else:
        if (channel == "email" and rng.random() < 0.8) or (
            channel == "portal" and rng.random() < 0.3
        ):
            parts.append(rng.choice(GREETINGS))
        parts.append(sentence)
        n_context = rng.choice([0, 0, 1, 1, 2]) if channel == "email" else rng.choice([0, 0, 1])
        parts.extend(fill(c, rng) for c in rng.sample(CONTEXT, n_context))
        if (channel == "email" and rng.random() < 0.75) or (
            channel == "portal" and rng.random() < 0.2
        ):
            parts.append(fill(rng.choice(SIGNATURES), rng))
    text = "\n".join(parts) if channel == "email" else " ".join(parts)
    return typos(text, rng, typo_rate)
