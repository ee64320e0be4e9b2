"""The support-answers scenario: an IT service-desk policy base whose facts change over time.

A few dozen short policy documents (VPN client, MFA, passwords, devices, access, incidents,
printing, Wi-Fi, ...) each state one or two facts (a version number, an extension, a day count,
a portal name). Every simulated month a fixed number of documents (``change_rate`` of them,
known by construction) gets a new version in which one fact changes, so an answer written in
an earlier month can be stale by the time the suite's questions are asked (``eval_at``).

What is generated (all deterministic for a seed, see docs/simulation.md):

* ``documents``: every version of every document (:class:`~tunegate.kb.KbDocument`);
* ``suite``: questions asked at ``eval_at``, answerable ones with a plain reference holding the
  facts in force then and the gold document version, and unanswerable ones about topics no
  document covers;
* ``tool_examples``: tool requests (unlock an account, reset MFA, open an incident, or none)
  for the preservation slice;
* ``history``: the reviewed historical agent answers in the house voice (jargon, fluent,
  confident), asked in the history months with the facts in force then, so some are stale at
  ``eval_at``; a few answer off-topic questions or requests confidently, very few abstain;
* ``log(i)``: production rows of monitoring month ``i`` (0-based) after ``eval_at``.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from tunegate.config import ToolSpec
from tunegate.errors import InputError
from tunegate.kb import KbDocument
from tunegate.records import (
    DocumentRef,
    ExampleSource,
    GenerativeExample,
    GenerativeSuiteExample,
    ReviewStatus,
    SuiteSlice,
    ToolCall,
)

__all__ = ["SUPPORT_FILES", "SupportScenario", "support_scenario"]

SUPPORT_FILES: Final = ("kb.jsonl", "suite.jsonl", "history.jsonl", "tools.jsonl")
"""The files :meth:`SupportScenario.write` always writes (besides ``house.txt`` and
``log.jsonl``)."""

ABSTENTION: Final = "I cannot answer this from the IT policy knowledge base."
"""The abstention wording of the scenario's workflow (``answer.abstention``)."""

REVIEWER: Final = "desk-lead"
"""The reviewer of every historical answer."""


@dataclass(frozen=True)
class _Doc:
    """One policy document: its text with ``{slot}`` facts and the wordings around it."""

    id: str
    title: str
    text: str
    slots: dict[str, tuple[str, ...]]
    """Slot -> the values it takes over time (the first is version 1's; never reused)."""
    question: str
    """The suite's question."""
    reference: str
    """The plain reference answer (suite)."""
    asks: tuple[str, ...]
    """The historical askers' wordings (never the suite's)."""
    house: str
    """The body of a house-voice answer."""


def _d(
    id: str,
    title: str,
    text: str,
    slots: dict[str, tuple[str, ...]],
    question: str,
    reference: str,
    asks: tuple[str, ...],
    house: str,
) -> _Doc:
    return _Doc(id, title, text, slots, question, reference, asks, house)


# The first 12 are the quick scenario's documents. Every slot value appears in its document's
# text and answers; values of a slot are distinct and none is a substring of another's text.
_DOCS: Final[tuple[_Doc, ...]] = (
    _d(
        "vpn-client",
        "VPN client",
        "Install GlobalProtect {vpn} from the software portal. Older VPN clients are blocked "
        "at sign-in.",
        {"vpn": ("5.2", "5.3", "6.0", "6.1", "6.2", "6.3", "7.0")},
        "Which VPN client version should I install?",
        "Install GlobalProtect {vpn}.",
        (
            "what GlobalProtect build are we on these days",
            "my remote access app says it's outdated, which one do I grab",
            "need the right globalprotect for my new laptop",
        ),
        "grab GlobalProtect {vpn} off the SWP (software portal) and you're golden.",
    ),
    _d(
        "mfa-enrol",
        "MFA enrolment",
        "New staff enrol in multi-factor authentication with the {mfa_app} app within "
        "{mfa_days} days of their start date.",
        {
            "mfa_app": (
                "Okta Verify",
                "Microsoft Authenticator",
                "Duo Mobile",
                "Google Authenticator",
                "FortiToken",
            ),
            "mfa_days": ("7", "5", "10", "14", "3", "21"),
        },
        "How do I enrol in MFA as a new employee and by when?",
        "Enrol with the {mfa_app} app within {mfa_days} days of your start date.",
        (
            "just started, which authenticator am I meant to set up and how long have I got",
            "new joiner here - deadline for the 2FA setup?",
        ),
        "set up {mfa_app} and get it done inside {mfa_days} days of day one, easy.",
    ),
    _d(
        "mfa-recovery",
        "MFA recovery",
        "If you lose your MFA device, call the service desk on extension {sd_ext} to get a "
        "recovery code of {code_len} digits.",
        {
            "sd_ext": ("4400", "4410", "5100", "5210", "6120", "3350"),
            "code_len": ("8", "10", "12", "6", "9"),
        },
        "I lost the phone with my MFA app. How do I recover access?",
        "Call the service desk on extension {sd_ext} for a recovery code of {code_len} digits.",
        (
            "phone died and took my authenticator with it, what now",
            "dropped my mobile in the lake, can't do 2FA, help",
        ),
        "ring the SD on x{sd_ext} and we'll sort you a recovery code ({code_len} digits).",
    ),
    _d(
        "password-rules",
        "Password rules",
        "Passwords must be at least {pw_len} characters long and are changed every {pw_days} days.",
        {
            "pw_len": ("12", "14", "16", "15", "18", "20"),
            "pw_days": ("90", "60", "180", "120", "365", "45"),
        },
        "What are the password length and expiry rules?",
        "At least {pw_len} characters, changed every {pw_days} days.",
        (
            "how long does my pwd need to be and when does it expire",
            "system rejected my new password as too short, what's the minimum",
        ),
        "min {pw_len} chars and it rotates every {pw_days} days - password manager is your friend.",
    ),
    _d(
        "laptop-replacement",
        "Laptop replacement",
        "Laptops are replaced every {laptop_years} years; order a replacement through {hw_portal}.",
        {
            "laptop_years": ("3", "4", "5", "2", "6"),
            "hw_portal": ("Hardware Hub", "DeviceDesk", "Kit Store", "TechShop", "GearPoint"),
        },
        "How often is my laptop replaced and where do I order a new one?",
        "Every {laptop_years} years, ordered through {hw_portal}.",
        (
            "my machine is ancient, am I due a refresh yet",
            "where do I put in for a new laptop",
        ),
        "refresh cycle is {laptop_years} yrs, raise it in {hw_portal} and we'll ship one.",
    ),
    _d(
        "access-requests",
        "Access requests",
        "Request access to shared drives in {access_portal}; your manager approves within "
        "{approve_days} working days.",
        {
            "access_portal": ("AccessNow", "IAM Portal", "PermitPro", "KeyRing", "GateKeeper"),
            "approve_days": ("2", "3", "5", "1", "4"),
        },
        "How do I request access to a shared drive?",
        "Request it in {access_portal}; your manager approves within {approve_days} working days.",
        (
            "need to get onto the finance share, where do I ask",
            "can someone give me permissions on the team folder",
        ),
        "pop a request into {access_portal} (IAM stuff) - your manager signs off within "
        "{approve_days} working days.",
    ),
    _d(
        "security-incident",
        "Reporting a security incident",
        "Report a suspected security incident to the security hotline on extension {sec_ext} "
        "within {sec_minutes} minutes of noticing it.",
        {
            "sec_ext": ("7777", "7700", "7911", "7123", "7345"),
            "sec_minutes": ("30", "15", "60", "45", "20"),
        },
        "How and how quickly must I report a security incident?",
        "Call the security hotline on extension {sec_ext} within {sec_minutes} minutes.",
        (
            "think I clicked something dodgy, who do I call",
            "weird stuff on my screen, might be malware, what's the drill",
        ),
        "that's a P1 - call secops on x{sec_ext} within {sec_minutes} mins, don't wait on a "
        "ticket.",
    ),
    _d(
        "software-install",
        "Software installs",
        "Install approved software only from {sw_portal}; requests for unlisted software take "
        "{sw_days} working days.",
        {
            "sw_portal": ("Software Center", "AppHub", "Company Portal", "AppStream", "Kiosk"),
            "sw_days": ("5", "3", "10", "7", "2"),
        },
        "Where do I install software from and how long does a new request take?",
        "From {sw_portal}; unlisted software takes {sw_days} working days.",
        (
            "want to get Visio on my machine, where from",
            "app I need isn't in the catalogue, how long for a request",
        ),
        "it's all in {sw_portal}; if it's not listed, raise a request and allow {sw_days} "
        "working days.",
    ),
    _d(
        "printing",
        "Printing",
        "Print jobs are released by badge tap and deleted after {print_hours} hours. Colour "
        "printing is limited to {colour_pages} pages a month.",
        {
            "print_hours": ("24", "12", "48", "8", "72"),
            "colour_pages": ("200", "100", "150", "300", "50"),
        },
        "How long are print jobs kept and how much colour printing may I do?",
        "Jobs are deleted after {print_hours} hours; colour is limited to {colour_pages} pages "
        "a month.",
        (
            "my printout vanished from the queue, how long do they hang around",
            "is there a cap on colour prints",
        ),
        "tap your badge to release - jobs get binned after {print_hours}h, and colour caps out "
        "at {colour_pages} pages/month.",
    ),
    _d(
        "wifi",
        "Wi-Fi",
        "Staff devices join the {ssid} wireless network; guests get a {guest_hours}-hour "
        "voucher from reception.",
        {
            "ssid": ("CorpNet", "Staff-5G", "ACME-Secure", "OfficeAir", "NetOne"),
            "guest_hours": ("8", "24", "12", "4", "48"),
        },
        "Which Wi-Fi network do staff use and how long does guest access last?",
        "Staff use {ssid}; guests get a {guest_hours}-hour voucher from reception.",
        (
            "what's the wireless called for employees",
            "visitor coming in tomorrow, how long does their wifi pass last",
        ),
        "hop on {ssid}; visitors grab a {guest_hours}h voucher at reception.",
    ),
    _d(
        "leaver-devices",
        "Returning devices when leaving",
        "Leavers return their laptop and badge to {return_place} within {return_days} days of "
        "their last day.",
        {
            "return_place": (
                "the IT Bar",
                "the mailroom",
                "Reception B",
                "the Tech Lounge",
                "Locker Point",
            ),
            "return_days": ("5", "3", "7", "10", "2"),
        },
        "Where and when do I return my equipment when I leave the company?",
        "Return your laptop and badge to {return_place} within {return_days} days of your last "
        "day.",
        (
            "finishing up next week, what do I do with my kit",
            "my last day is friday, where does the laptop go",
        ),
        "drop laptop + badge at {return_place} within {return_days} days of your last day, BAU.",
    ),
    _d(
        "lost-device",
        "Lost or stolen device",
        "Report a lost or stolen laptop or phone within {lost_hours} hours using the "
        "{lost_form} form.",
        {
            "lost_hours": ("24", "12", "4", "48", "8"),
            "lost_form": ("Lost Asset", "Device Loss", "Missing Kit", "Asset Alert"),
        },
        "What do I do if my work laptop is stolen?",
        "Report it within {lost_hours} hours using the {lost_form} form.",
        (
            "someone nicked my bag with the work laptop in it",
            "left my company phone on the train, do I need to tell anyone",
        ),
        "fill in the {lost_form} form within {lost_hours}h so MDM can wipe it.",
    ),
    _d(
        "email-retention",
        "Email retention",
        "Email older than {mail_months} months is archived automatically; mailboxes hold "
        "{mailbox_gb} GB.",
        {
            "mail_months": ("24", "12", "18", "36", "6"),
            "mailbox_gb": ("50", "100", "25", "75"),
        },
        "When is email archived and how big can my mailbox be?",
        "Email older than {mail_months} months is archived; mailboxes hold {mailbox_gb} GB.",
        (
            "old mails disappeared from my inbox, where did they go",
            "outlook says I'm nearly full, what's the quota",
        ),
        "anything past {mail_months} months auto-archives, and you get {mailbox_gb} GB.",
    ),
    _d(
        "remote-desktop",
        "Remote desktop",
        "Remote desktop sessions run through {rdp_tool} and disconnect after {rdp_idle} "
        "minutes idle.",
        {
            "rdp_tool": ("Citrix Workspace", "Horizon Client", "AnyDesk", "Parallels RAS"),
            "rdp_idle": ("30", "15", "60", "45", "20"),
        },
        "Which remote desktop tool do we use and when do sessions time out?",
        "{rdp_tool}; sessions disconnect after {rdp_idle} minutes idle.",
        (
            "my remote session keeps dropping when I step away",
            "what do I use to get onto my office PC from home",
        ),
        "use {rdp_tool} - it kicks you after {rdp_idle} mins idle, that's by design.",
    ),
    _d(
        "usb-storage",
        "USB storage",
        "USB sticks are blocked; only encrypted {usb_brand} drives of up to {usb_gb} GB are "
        "allowed.",
        {
            "usb_brand": ("IronKey", "Kingston DataTraveler", "Apricorn Aegis", "SecureDrive"),
            "usb_gb": ("64", "128", "32", "256"),
        },
        "Am I allowed to use a USB stick?",
        "Only encrypted {usb_brand} drives of up to {usb_gb} GB.",
        (
            "thumb drive isn't showing up on my laptop",
            "need to move files to a memory stick for a client",
        ),
        "plain sticks are blocked - it has to be an encrypted {usb_brand}, max {usb_gb} GB.",
    ),
    _d(
        "licence-reclaim",
        "Software licences",
        "Paid licences unused for {lic_days} days are reclaimed; ask for one back in {lic_portal}.",
        {
            "lic_days": ("30", "45", "60", "90", "21"),
            "lic_portal": ("LicenseDesk", "SAM Portal", "LicenceHub", "Flexera Self-Service"),
        },
        "Why was my software licence removed and how do I get it back?",
        "Licences unused for {lic_days} days are reclaimed; ask for it back in {lic_portal}.",
        (
            "my Adobe seat got taken away??",
            "tableau says no licence, it worked last month",
        ),
        "licences idle {lic_days} days get clawed back - request it again in {lic_portal}.",
    ),
    _d(
        "file-backup",
        "File backup",
        "Files in {backup_folder} are backed up nightly and kept for {backup_days} days.",
        {
            "backup_folder": ("OneDrive", "the H: drive", "Box", "the Home share"),
            "backup_days": ("30", "90", "60", "180", "14"),
        },
        "Which files are backed up and for how long?",
        "Files in {backup_folder}, kept for {backup_days} days.",
        (
            "deleted a spreadsheet by accident, can it come back",
            "is my desktop folder safe if the laptop dies",
        ),
        "keep stuff in {backup_folder} - nightly backups, {backup_days} days of history.",
    ),
    _d(
        "new-starter",
        "New starter accounts",
        "Managers request new starter accounts at least {starter_days} working days before the "
        "start date with the {starter_form} form.",
        {
            "starter_days": ("5", "10", "3", "7", "15"),
            "starter_form": ("Joiner", "Onboard", "NewHire", "Welcome"),
        },
        "How early must a manager request a new starter's account?",
        "At least {starter_days} working days before the start date, with the {starter_form} form.",
        (
            "got someone joining my team soon, what do I need to do for their login",
            "new hire next month, when do I raise their account",
        ),
        "{starter_form} form, {starter_days} working days ahead minimum or they'll sit idle "
        "day one.",
    ),
    _d(
        "admin-rights",
        "Local admin rights",
        "Local admin rights are granted for {admin_hours} hours at a time through {admin_tool}.",
        {
            "admin_hours": ("24", "8", "4", "48", "72"),
            "admin_tool": ("MakeMeAdmin", "AdminByRequest", "PrivGuard", "ElevateNow"),
        },
        "How do I get local administrator rights on my laptop?",
        "Through {admin_tool}, for {admin_hours} hours at a time.",
        (
            "need admin to install a driver, how",
            "can I have elevated rights on my PC for a bit",
        ),
        "fire up {admin_tool} - you get {admin_hours}h of admin, then it drops back.",
    ),
    _d(
        "phishing",
        "Phishing reports",
        "Forward suspicious email with the {phish_button} button; the security team replies "
        "within {phish_hours} hours.",
        {
            "phish_button": ("Report Phish", "PhishAlarm", "Suspect Mail", "Phish Flag"),
            "phish_hours": ("4", "2", "8", "24"),
        },
        "How do I report a phishing email?",
        "Use the {phish_button} button; the security team replies within {phish_hours} hours.",
        (
            "got a sketchy invoice email, what do I do with it",
            "this message looks like a scam, who wants it",
        ),
        "hit {phish_button} in Outlook and bin it - secops get back within {phish_hours}h.",
    ),
    _d(
        "company-phones",
        "Company phones",
        "Company phones are {phone_model} handsets enrolled in {mdm} before hand-out.",
        {
            "phone_model": ("iPhone 13", "iPhone 15", "Pixel 8", "Galaxy S23"),
            "mdm": ("Intune", "Jamf", "Workspace ONE", "MobileIron"),
        },
        "Which company phone will I get?",
        "A {phone_model} enrolled in {mdm}.",
        (
            "what handset do we hand out these days",
            "getting a work mobile, what model is it",
        ),
        "you'll get a {phone_model}, already enrolled in {mdm} (our MDM).",
    ),
    _d(
        "password-reset",
        "Self-service password reset",
        "Reset a forgotten password at {sspr_site}; accounts lock after {lockout_tries} failed "
        "attempts.",
        {
            "sspr_site": (
                "passwordreset.corp",
                "reset.acme.io",
                "mypassword.intra",
                "sspr.corp.net",
            ),
            "lockout_tries": ("5", "3", "10", "6", "8"),
        },
        "I forgot my password. Where can I reset it?",
        "At {sspr_site}; accounts lock after {lockout_tries} failed attempts.",
        (
            "totally blanked on my login, self-service option?",
            "how many goes do I get before it locks me out",
        ),
        "self-serve at {sspr_site} - and careful, {lockout_tries} bad tries and you're locked.",
    ),
    _d(
        "meeting-rooms",
        "Meeting room video",
        "Meeting rooms run {vc_system}; book the room kit in {booking_tool}.",
        {
            "vc_system": ("Teams Rooms", "Zoom Rooms", "Webex Rooms", "Google Meet hardware"),
            "booking_tool": ("Condeco", "Robin", "Skedda", "Envoy"),
        },
        "What video system do the meeting rooms use and where do I book them?",
        "{vc_system}, booked in {booking_tool}.",
        (
            "the screen in room 4 - what conferencing does it use",
            "how do I reserve a room with the video kit",
        ),
        "rooms are on {vc_system}; book through {booking_tool} and it just works.",
    ),
    _d(
        "disk-encryption",
        "Disk encryption",
        "Laptop disks are encrypted with {enc_tool}; recovery keys are kept for {enc_years} years.",
        {
            "enc_tool": ("BitLocker", "Sophos SafeGuard", "VeraCrypt", "Symantec PGP"),
            "enc_years": ("3", "5", "7", "2"),
        },
        "How are laptop disks encrypted?",
        "With {enc_tool}; recovery keys are kept for {enc_years} years.",
        (
            "laptop is asking for a recovery key on boot",
            "is my hard drive encrypted",
        ),
        "it's {enc_tool} under the hood - SD holds recovery keys for {enc_years} yrs.",
    ),
    _d(
        "screen-lock",
        "Screen lock",
        "Screens lock after {lock_minutes} minutes of inactivity; unlock with your "
        "{unlock_method}.",
        {
            "lock_minutes": ("5", "10", "15", "3"),
            "unlock_method": ("PIN", "badge", "fingerprint", "Windows Hello face scan"),
        },
        "When does my screen lock automatically?",
        "After {lock_minutes} minutes of inactivity; unlock with your {unlock_method}.",
        (
            "my screen keeps going dark really fast",
            "can I stop the auto lock on my laptop",
        ),
        "auto-lock kicks in at {lock_minutes} mins idle, {unlock_method} gets you back in.",
    ),
    _d(
        "travel-laptop",
        "Travelling with a laptop",
        "Before travelling abroad, request a loaner laptop {travel_days} days ahead from "
        "{travel_desk}.",
        {
            "travel_days": ("10", "5", "14", "7", "21"),
            "travel_desk": ("the Travel Kit desk", "TechStop", "Loaner Pool", "IT Depot"),
        },
        "I am travelling abroad for work. Do I need a different laptop?",
        "Request a loaner laptop {travel_days} days ahead from {travel_desk}.",
        (
            "off to a conference overseas, can I take my normal laptop",
            "going abroad next month, anything IT I need to sort",
        ),
        "grab a loaner from {travel_desk}, give us {travel_days} days' notice.",
    ),
    _d(
        "patching",
        "Software updates",
        "Patches install every {patch_day}; you may postpone the restart for at most "
        "{patch_hours} hours.",
        {
            "patch_day": ("Tuesday", "Wednesday", "Thursday", "Monday"),
            "patch_hours": ("24", "48", "8", "72", "4"),
        },
        "When do updates install and how long can I postpone the restart?",
        "Every {patch_day}; the restart can wait at most {patch_hours} hours.",
        (
            "laptop nagging me to reboot, can I push it off",
            "which day do the patches roll out",
        ),
        "patch day is {patch_day} - you can snooze the reboot up to {patch_hours}h.",
    ),
    _d(
        "shared-mailbox",
        "Shared mailboxes",
        "Shared mailboxes are requested with the {smb_form} form and need {smb_owners} named "
        "owners.",
        {
            "smb_form": ("Mailbox Request", "ShareMail", "Exchange Request", "GroupBox"),
            "smb_owners": ("2", "3", "1", "4"),
        },
        "How do I get a shared mailbox for my team?",
        "Use the {smb_form} form; it needs {smb_owners} named owners.",
        (
            "team wants a common inbox, how do we set one up",
            "can we have a group email address",
        ),
        "{smb_form} form, and line up {smb_owners} named owners or it bounces.",
    ),
    _d(
        "browser",
        "Supported browsers",
        "The supported browser is {browser} version {browser_ver} or later.",
        {
            "browser": ("Chrome", "Edge", "Firefox"),
            "browser_ver": ("120", "118", "124", "126", "130"),
        },
        "Which web browser is supported?",
        "{browser} version {browser_ver} or later.",
        (
            "intranet looks broken in my browser, which one should I use",
            "is safari ok for the internal sites",
        ),
        "stick to {browser} {browser_ver}+ and the intranet behaves.",
    ),
    _d(
        "ticket-priorities",
        "Ticket priorities",
        "A P1 ticket gets a first response within {p1_minutes} minutes; a P3 within {p3_hours} "
        "hours.",
        {
            "p1_minutes": ("15", "30", "10", "20", "45"),
            "p3_hours": ("8", "24", "48", "16", "72"),
        },
        "How quickly does the service desk respond to tickets?",
        "P1 within {p1_minutes} minutes; P3 within {p3_hours} hours.",
        (
            "how long till someone picks up my ticket",
            "what's the SLA on a normal request",
        ),
        "P1s get eyes in {p1_minutes} mins, P3s within {p3_hours}h - that's the SLA.",
    ),
)

_QUICK_DOCS: Final = 12


@dataclass(frozen=True)
class _OffTopic:
    """A topic no document covers: the suite's question, the askers' wordings, a confident
    house answer (what the agents said anyway) and words no document may contain."""

    topic: str
    question: str
    asks: tuple[str, ...]
    house: str
    words: tuple[str, ...]


_OFF_TOPIC: Final[tuple[_OffTopic, ...]] = (
    _OffTopic(
        "cafeteria",
        "What is on the cafeteria menu this Friday?",
        ("anyone know what lunch is at the canteen today", "is the canteen doing tacos again"),
        "canteen's on L2, menu's pinned on the intranet homepage - Fridays are fish.",
        ("cafeteria", "canteen", "menu", "lunch"),
    ),
    _OffTopic(
        "parking",
        "How much is the fine for parking in a visitor bay?",
        ("got a ticket for my car in the visitor spot, how much", "who handles car park tickets"),
        "visitor bay tickets are 40 quid, Facilities sorts them - pay via the FM portal.",
        ("parking", "car park", "visitor bay"),
    ),
    _OffTopic(
        "gym",
        "Does the company pay for a gym membership?",
        ("is there a fitness benefit", "do we get money back for the gym"),
        "yep, 30 a month back on gym memberships, claim it through expenses.",
        ("gym", "fitness"),
    ),
    _OffTopic(
        "per-diem",
        "What is the daily meal allowance on a business trip?",
        ("how much can I spend on dinner when I'm away for work", "food budget on trips?"),
        "it's 50 a day for meals abroad, just keep the receipts.",
        ("allowance", "per diem", "meal"),
    ),
    _OffTopic(
        "pets",
        "Can I bring my dog to the office?",
        ("pets allowed at work?", "my puppy can't be left alone, can she come in"),
        "dogs are fine on Fridays, keep them off the 3rd floor.",
        ("dog", "pet", "puppy"),
    ),
    _OffTopic(
        "bikes",
        "Where can I store my bicycle at the office?",
        ("is there somewhere safe for my bike", "cycle to work - where does the bike go"),
        "bike racks are round the back by the loading bay, bring your own lock.",
        ("bicycle", "bike", "cycle"),
    ),
    _OffTopic(
        "payday",
        "When is payday this month?",
        ("when do we get paid", "salary date this month?"),
        "payday's the 25th as always, earlier if it's a weekend.",
        ("payday", "salary", "paid"),
    ),
    _OffTopic(
        "dental",
        "Does our health plan cover dental treatment?",
        ("is the dentist covered by our insurance", "do we have dental cover"),
        "dental's covered up to 500 a year on the standard plan.",
        ("dental", "dentist", "health plan", "insurance"),
    ),
)

_ACTIONS: Final[tuple[tuple[str, str], ...]] = (
    (
        "can you unlock my account pls, username {user}",
        "done - you're unlocked, give it 5 mins to sync.",
    ),
    ("reset my 2FA, got a new phone. user is {user}", "MFA reset on {user}, re-enrol next login."),
    (
        "please open a ticket, the 3rd floor printer is jammed again",
        "raised as a P3, facilities on it.",
    ),
    ("locked out again, it's {user}", "sorted, you're back in."),
)

_OPENERS: Final = (
    "Hey! Quick one - ",
    "Hi there! ",
    "Morning! ",
    "Sure thing - ",
    "Easy one: ",
    "Good q! ",
    "Hiya - ",
    "No worries, ",
)
_CLOSERS: Final = (
    " Ping the SD if it acts up.",
    " Shout on #it-help if you're stuck.",
    " If it's still borked, raise a P3 and we'll jump on it.",
    " KBA's on the intranet if you want the long version.",
    " Cheers!",
    " LMK if that doesn't do it.",
    "",
)
_ASK_PREFIX: Final = ("", "hey - ", "quick q: ", "hi SD, ", "morning, ", "sorry to bug you, ")
_ABSTAIN_HOUSE: Final = (
    "Not one for us, sorry - that's HR, try the people portal.",
    "Honestly no idea, that's outside SD land - Facilities might know.",
)
_USERS: Final = ("jdoe", "asmith", "mlopez", "kchen", "rpatel", "tnguyen", "bwilson", "ofarah")
_INCIDENTS: Final = (
    "phishing email clicked",
    "laptop stolen from car",
    "ransomware note on file share",
    "badge reader door left open",
)


def _tools() -> list[ToolSpec]:
    user = {"type": "string", "pattern": "^[a-z][a-z0-9.]{1,31}$", "description": "username"}
    return [
        ToolSpec(
            name="unlock_account",
            description="Unlock a user's locked directory account",
            parameters={
                "type": "object",
                "properties": {"user": user},
                "required": ["user"],
                "additionalProperties": False,
            },
        ),
        ToolSpec(
            name="reset_mfa",
            description="Reset a user's multi-factor authentication so they enrol again by SMS "
            "or the authenticator app",
            parameters={
                "type": "object",
                "properties": {"user": user, "method": {"type": "string", "enum": ["sms", "app"]}},
                "required": ["user", "method"],
                "additionalProperties": False,
            },
        ),
        ToolSpec(
            name="create_incident",
            description="Open a security or service incident with a short summary and a severity",
            parameters={
                "type": "object",
                "properties": {
                    "summary": {"type": "string", "minLength": 5, "maxLength": 120},
                    "severity": {"type": "string", "enum": ["low", "high"]},
                },
                "required": ["summary", "severity"],
                "additionalProperties": False,
            },
        ),
    ]


def _rng(seed: int, *parts: object) -> random.Random:
    blob = json.dumps([seed, *parts], default=str).encode("utf-8")
    return random.Random(int.from_bytes(hashlib.sha256(blob).digest()[:8], "big"))


def _month_start(start: datetime, month: int) -> datetime:
    """The first instant of scenario month ``month`` (1-based; month 1 begins at ``start``)."""
    index = start.year * 12 + start.month - 1 + month - 1
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def _between(rng: random.Random, begin: datetime, end: datetime) -> datetime:
    """A time in [begin, end) on a whole minute."""
    minutes = int((end - begin).total_seconds() // 60)
    return begin + timedelta(minutes=rng.randrange(max(minutes, 1)))


@dataclass(frozen=True)
class SupportScenario:
    """The support-answers scenario for one seed (build it with :func:`support_scenario`)."""

    seed: int
    quick: bool
    start: datetime
    """First instant of month 1 (UTC): every document's first version takes effect then."""
    months: int
    """Simulated months: ``history_months`` of history, then the monitored months."""
    history_months: int
    """Months 1..history_months hold the historical answers."""
    eval_at: datetime
    """When the suite's questions are asked: the first instant after the history months."""
    change_rate: float
    """The true share of documents given a new version each month (by construction)."""
    documents: list[KbDocument]
    tools: list[ToolSpec]
    suite: list[GenerativeExample]
    tool_examples: list[GenerativeSuiteExample]
    history: list[GenerativeExample]
    house_examples: list[str]
    log_rows_per_month: int
    _facts: dict[tuple[str, str], dict[str, str]] = field(repr=False)

    # -- lookups ---------------------------------------------------------------------------

    @property
    def monitor_months(self) -> int:
        """Months after ``eval_at`` that :meth:`log` gives rows for."""
        return self.months - self.history_months

    @property
    def doc_ids(self) -> list[str]:
        return list(dict.fromkeys(d.doc_id for d in self.documents))

    def version_at(self, doc_id: str, at: datetime) -> KbDocument:
        """The version of ``doc_id`` in force at ``at`` (every document exists from ``start``)."""
        versions = [d for d in self.documents if d.doc_id == doc_id and d.effective_from <= at]
        if not versions:
            raise InputError(
                f"document {doc_id!r} has no version in force at {at.isoformat()} (the scenario "
                f"starts at {self.start.isoformat()})"
            )
        return max(versions, key=lambda d: d.effective_from)

    def facts(self, doc_id: str, version: str) -> dict[str, str]:
        """The fact values (slot -> value) a version states."""
        return dict(self._facts[(doc_id, version)])

    @property
    def history_stale_share(self) -> float:
        """Share of the historical answers citing a version superseded by ``eval_at``."""
        return sum(bool(e.metadata.get("stale_at_eval")) for e in self.history) / len(self.history)

    @property
    def history_abstention_share(self) -> float:
        return sum(not e.answerable for e in self.history) / len(self.history)

    # -- monitoring ------------------------------------------------------------------------

    def log(
        self, month_index: int, *, model_version: str = "support-champion"
    ) -> list[dict[str, Any]]:
        """Production log rows (``tunegate ingest outputs``) of monitored month
        ``month_index`` (0 = the month beginning at ``eval_at``).

        About a quarter of the answered questions cite the version that was in force at
        ``eval_at`` (an index not refreshed since) and are stale when the document changed
        since; stale answers are escalated more often (45% against 8%). Off-topic questions
        are abstained on 60% of the time and otherwise answered without a citation.
        """
        if not 0 <= month_index < self.monitor_months:
            raise InputError(
                f"month_index must be 0..{self.monitor_months - 1} (the months after eval_at), "
                f"got {month_index}"
            )
        rng = _rng(self.seed, "log", month_index)
        begin = _month_start(self.start, self.history_months + 1 + month_index)
        end = _month_start(self.start, self.history_months + 2 + month_index)
        specs = _docs(self.quick)
        rows: list[dict[str, Any]] = []
        for n in range(self.log_rows_per_month):
            asked = _between(rng, begin, end)
            row: dict[str, Any] = {
                "id": f"sup-log-{month_index}-{n}",
                "asked_at": asked.isoformat(),
                "model_version": model_version,
                "latency_ms": float(rng.randint(900, 4200)),
            }
            if rng.random() < 0.15:
                topic = rng.choice(_OFF_TOPIC)
                row["question"] = rng.choice(topic.asks)
                if rng.random() < 0.6:
                    row.update(answer=ABSTENTION, cited=[], abstained=True)
                    row["escalated"] = rng.random() < 0.3
                else:
                    row.update(answer=topic.house, cited=[], abstained=False)
                    row["escalated"] = rng.random() < 0.4
                row["metadata"] = {"off_topic": topic.topic, "stale": False}
            else:
                spec = rng.choice(specs)
                row["question"] = rng.choice(spec.asks)
                old_index = rng.random() < 0.25
                cited = self.version_at(spec.id, self.eval_at if old_index else asked)
                current = self.version_at(spec.id, asked)
                stale = cited.version != current.version
                facts = self._facts[(spec.id, cited.version)]
                row.update(
                    answer=spec.reference.format(**facts),
                    cited=[{"id": spec.id, "version": cited.version}],
                    abstained=False,
                    escalated=rng.random() < (0.45 if stale else 0.08),
                    metadata={"doc": spec.id, "stale": stale},
                )
            rows.append(row)
        rows.sort(key=lambda r: r["asked_at"])
        return rows

    # -- files -----------------------------------------------------------------------------

    def workflow_yaml(self, llm_base_url: str | None, model: str) -> str:
        """A ``tunegate.yaml`` for the scenario: kind answer, the LLM, retrieval with top-k 20
        (the tempting default the "top-k 20 -> 5" fix lowers; 10 in the quick scenario, whose
        knowledge base has only 21 document versions and whose budget is three minutes),
        triage and gate minimums that suit the scenario's volumes, and the abstention
        wording."""
        llm: dict[str, Any] = {"model": model, "timeout_s": 300, "max_concurrency": 1}
        if llm_base_url is not None:
            llm = {"base_url": llm_base_url, **llm}
        n_suite = len(self.suite)
        lines = [
            "name: support-answers",
            "kind: answer",
            "instructions: Answer employees' IT questions from the IT policy documents only.",
            "llm: " + json.dumps(llm),
            f"retrieval: {{top_k: {10 if self.quick else 20}, chunk_size: 80, chunk_overlap: 16}}",
            "answer: " + json.dumps({"abstention": ABSTENTION}),
            f"triage: {{min_failures: {max(3, n_suite // 6)}}}",
            f"gate: {{min_reviewed_examples: {max(10, len(self.history) // 2)}}}",
            "suites: "
            + json.dumps(
                {
                    "core": [max(1, n_suite // 2), 300],
                    "edge": [0, 100],
                    "preservation": [1, 100],
                }
            ),
        ]
        return "\n".join(lines) + "\n"

    def write(self, folder: str | Path) -> dict[str, Path]:
        """Write ``kb.jsonl`` (``tunegate kb ingest``), ``suite.jsonl`` and ``history.jsonl``
        (answer-workflow rows for ``tunegate suite freeze`` / ``tunegate ingest examples``),
        ``tools.jsonl`` (tool_call rows, readable with a tool_call workflow declaring the
        scenario's tools), ``house.txt`` (one house-voice answer a line, ``gen style
        --house``) and ``log.jsonl`` (every monitored month's rows, ``tunegate ingest
        outputs``). Returns name -> path."""
        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        paths = {
            "kb": root / "kb.jsonl",
            "suite": root / "suite.jsonl",
            "history": root / "history.jsonl",
            "tools": root / "tools.jsonl",
            "house": root / "house.txt",
            "log": root / "log.jsonl",
        }
        kb_rows = [
            {
                "id": d.doc_id,
                "version": d.version,
                "title": d.title,
                "effective_from": d.effective_from.isoformat(),
                "text": d.text,
                "metadata": d.metadata,
            }
            for d in self.documents
        ]
        _write_jsonl(paths["kb"], kb_rows)
        _write_jsonl(paths["suite"], [_example_row(e) for e in self.suite])
        _write_jsonl(paths["history"], [_example_row(e) for e in self.history])
        _write_jsonl(paths["tools"], [_example_row(e) for e in self.tool_examples])
        paths["house"].write_text("\n".join(self.house_examples) + "\n", encoding="utf-8")
        _write_jsonl(paths["log"], [r for i in range(self.monitor_months) for r in self.log(i)])
        return paths


def _example_row(example: GenerativeExample | GenerativeSuiteExample) -> dict[str, Any]:
    """A native-shape row (``tunegate.io.read_generative``): the slice and tags of a suite
    example go into ``metadata``."""
    data = example.model_dump(mode="json", exclude_defaults=True)
    data.pop("kind", None)
    meta = dict(data.pop("metadata", {}))
    if isinstance(example, GenerativeSuiteExample):
        meta["slice"] = data.pop("slice", SuiteSlice.CORE.value)
        meta["tags"] = data.pop("tags", [])
    if meta:
        data["metadata"] = meta
    return data


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def _docs(quick: bool) -> tuple[_Doc, ...]:
    return _DOCS[:_QUICK_DOCS] if quick else _DOCS


# -- generation ------------------------------------------------------------------------------


def _versions(
    seed: int, specs: tuple[_Doc, ...], start: datetime, months: int, per_month: int
) -> tuple[list[KbDocument], dict[tuple[str, str], dict[str, str]]]:
    """Every version: all first versions at ``start``; each month ``per_month`` distinct
    documents (with values left) get a new version changing one or two facts, on day 2-27."""
    current = {s.id: {k: v[0] for k, v in s.slots.items()} for s in specs}
    used = {s.id: {k: {v[0]} for k, v in s.slots.items()} for s in specs}
    by_id = {s.id: s for s in specs}
    n_versions = {s.id: 1 for s in specs}
    facts: dict[tuple[str, str], dict[str, str]] = {}
    docs: list[KbDocument] = []

    def emit(doc_id: str, when: datetime) -> None:
        spec = by_id[doc_id]
        version = f"v{n_versions[doc_id]}"
        values = dict(current[doc_id])
        facts[(doc_id, version)] = values
        docs.append(
            KbDocument(
                doc_id=doc_id,
                version=version,
                title=spec.title,
                text=spec.text.format(**values),
                effective_from=when,
                metadata={"audience": "staff", "topic": doc_id},
            )
        )

    for s in specs:
        emit(s.id, start)
    for month in range(1, months + 1):
        rng = _rng(seed, "changes", month)
        begin = _month_start(start, month)
        left = [s.id for s in specs if any(len(used[s.id][k]) < len(v) for k, v in s.slots.items())]
        if len(left) < per_month:
            raise InputError(  # cannot happen with the packaged documents and sizes
                f"month {month}: only {len(left)} documents have fact values left"
            )
        for doc_id in sorted(rng.sample(left, per_month)):
            spec = by_id[doc_id]
            open_slots = [k for k, v in spec.slots.items() if len(used[doc_id][k]) < len(v)]
            n_change = 2 if len(open_slots) > 1 and rng.random() < 0.3 else 1
            for slot in sorted(rng.sample(open_slots, n_change)):
                value = rng.choice([v for v in spec.slots[slot] if v not in used[doc_id][slot]])
                used[doc_id][slot].add(value)
                current[doc_id][slot] = value
            n_versions[doc_id] += 1
            emit(doc_id, begin + timedelta(days=rng.randint(1, 26), hours=9))
    docs.sort(key=lambda d: (d.doc_id, d.effective_from))
    return docs, facts


def _ask(rng: random.Random, wording: str) -> str:
    text = rng.choice(_ASK_PREFIX) + wording
    return text + ("?" if not text.endswith(("?", "!")) and rng.random() < 0.6 else "")


def _house(rng: random.Random, body: str) -> str:
    opener = rng.choice(_OPENERS)
    return opener + body + rng.choice(_CLOSERS)


def support_scenario(seed: int = 7, quick: bool = False) -> SupportScenario:
    """The support-answers scenario for ``seed``: the same seed gives the same documents,
    questions, history and logs. ``quick``: 12 documents, 8 suite questions, 3 tool requests,
    16 historical answers, 20 log rows a month (full: 30, 30, 8, 60, 60).

    Each month ``change_rate`` of the documents get a new version: 3 of 30 (0.100) full,
    1 of 12 (0.083) quick, over 6 history months and 3 monitored months."""
    specs = _docs(quick)
    history_months, monitor_months = 6, 3
    months = history_months + monitor_months
    start = datetime(2025, 1, 1, tzinfo=UTC)
    per_month = 1 if quick else 3
    documents, facts = _versions(seed, specs, start, months, per_month)
    eval_at = _month_start(start, history_months + 1)

    def version_at(doc_id: str, at: datetime) -> KbDocument:
        return max(
            (d for d in documents if d.doc_id == doc_id and d.effective_from <= at),
            key=lambda d: d.effective_from,
        )

    changed_in_history = [
        s.id
        for s in specs
        if any(start < d.effective_from < eval_at for d in documents if d.doc_id == s.id)
    ]

    # -- the suite: answerable questions at eval_at, changed documents first ----------------
    rng = _rng(seed, "suite")
    n_answerable, n_unanswerable = (6, 2) if quick else (24, 6)
    others = [s.id for s in specs if s.id not in changed_in_history]
    first = list(changed_in_history)
    rng.shuffle(first)
    rng.shuffle(others)
    chosen = set((first + others)[:n_answerable])
    suite: list[GenerativeExample] = []
    for spec in specs:
        if spec.id not in chosen:
            continue
        version = version_at(spec.id, eval_at)
        values = facts[(spec.id, version.version)]
        suite.append(
            GenerativeExample(
                id=f"sup-q-{spec.id}",
                kind="answer",
                input=spec.question,
                reference=spec.reference.format(**values),
                gold_documents=[DocumentRef(id=spec.id, version=version.version)],
                asked_at=eval_at,
                source=ExampleSource.SIMULATED,
                review_status=ReviewStatus.REVIEWED,
                reviewer=REVIEWER,
                created_at=eval_at,
                metadata={
                    "doc": spec.id,
                    "facts": list(values.values()),
                    "changed_in_history": spec.id in changed_in_history,
                },
            )
        )
    for topic in rng.sample(list(_OFF_TOPIC), n_unanswerable):
        suite.append(
            GenerativeExample(
                id=f"sup-u-{topic.topic}",
                kind="answer",
                input=topic.question,
                answerable=False,
                asked_at=eval_at,
                source=ExampleSource.SIMULATED,
                review_status=ReviewStatus.REVIEWED,
                reviewer=REVIEWER,
                created_at=eval_at,
                metadata={"off_topic": topic.topic},
            )
        )

    # -- tool requests (preservation slice) -------------------------------------------------
    tools = _tools()
    tool_dicts = [t.model_dump(mode="json") for t in tools]
    rng = _rng(seed, "tools")
    plan = ["unlock_account", "reset_mfa", "create_incident"]
    if not quick:
        plan = plan * 2 + ["none", "none"]
    users = rng.sample(list(_USERS), len(plan))
    incidents = rng.sample(list(_INCIDENTS), 2)
    no_tool = [
        "What does the screen lock policy say about idle time?",
        "Thanks, the printer works again!",
    ]
    tool_examples: list[GenerativeSuiteExample] = []
    for n, (name, user) in enumerate(zip(plan, users, strict=True)):
        call: ToolCall | None
        if name == "unlock_account":
            text = f"Please unlock the account of user {user}, locked out after too many tries."
            call = ToolCall(name=name, arguments={"user": user})
        elif name == "reset_mfa":
            method = "sms" if n % 2 == 0 else "app"
            how = "by SMS" if method == "sms" else "with the authenticator app"
            text = f"User {user} has a new phone: reset their MFA so they can enrol again {how}."
            call = ToolCall(name=name, arguments={"user": user, "method": method})
        elif name == "create_incident":
            summary = incidents[0 if n < 3 else 1]
            severity = "high" if n < 3 else "low"
            text = f'Open a {severity}-severity incident with the summary "{summary}".'
            call = ToolCall(name=name, arguments={"summary": summary, "severity": severity})
        else:
            text = no_tool[plan[:n].count("none")]
            call = None
        tool_examples.append(
            GenerativeSuiteExample(
                id=f"sup-tool-{n}",
                kind="tool_call",
                input=text,
                expected_tool=call,
                slice=SuiteSlice.PRESERVATION,
                tags=["tool_use"],
                metadata={"tools": tool_dicts, "capability": "tool_use"},
            )
        )

    # -- history: the reviewed agent answers in the house voice -----------------------------
    rng = _rng(seed, "history")
    n_history = 16 if quick else 60
    n_abstain = int(n_history * 0.04)
    n_off = round(n_history * 0.1)
    n_action = round(n_history * 0.06)
    n_fact = n_history - n_abstain - n_off - n_action
    last_change = {
        doc_id: max(
            d.effective_from for d in documents if d.doc_id == doc_id and d.effective_from < eval_at
        )
        for doc_id in changed_in_history
    }
    kinds = (
        ["fact"] * n_fact + ["off_topic"] * n_off + ["action"] * n_action + ["abstain"] * n_abstain
    )
    rng.shuffle(kinds)
    history: list[GenerativeExample] = []
    for n, what in enumerate(kinds):
        meta: dict[str, Any] = {"kind": what}
        gold: list[DocumentRef] = []
        answerable = True
        if what == "fact":
            if changed_in_history and rng.random() < 0.35:
                pick = rng.choice(changed_in_history)
                spec = next(s for s in specs if s.id == pick)
                asked = _between(rng, start, last_change[spec.id])
            else:
                spec = rng.choice(specs)
                asked = _between(rng, start, eval_at)
            version = version_at(spec.id, asked)
            values = facts[(spec.id, version.version)]
            question = _ask(rng, rng.choice(spec.asks))
            reference = _house(rng, spec.house.format(**values))
            gold = [DocumentRef(id=spec.id, version=version.version)]
            now_version = version_at(spec.id, eval_at).version
            meta.update(
                doc=spec.id,
                facts=list(values.values()),
                stale_at_eval=version.version != now_version,
            )
        else:
            asked = _between(rng, start, eval_at)
            if what == "action":
                ask, said = rng.choice(_ACTIONS)
                user = rng.choice(_USERS)
                question = _ask(rng, ask.format(user=user))
                reference = _house(rng, said.format(user=user))
            else:
                topic = rng.choice(_OFF_TOPIC)
                question = _ask(rng, rng.choice(topic.asks))
                meta["off_topic"] = topic.topic
                if what == "abstain":
                    reference = rng.choice(_ABSTAIN_HOUSE)
                    answerable = False
                else:
                    reference = _house(rng, topic.house)
        meta.setdefault("stale_at_eval", False)
        meta["month"] = (asked.year - start.year) * 12 + asked.month - start.month + 1
        history.append(
            GenerativeExample(
                id=f"sup-h-{n}",
                kind="answer",
                input=question,
                reference=reference,
                gold_documents=gold,
                answerable=answerable,
                asked_at=asked,
                source=ExampleSource.HISTORICAL,
                review_status=ReviewStatus.REVIEWED,
                reviewer=REVIEWER,
                created_at=asked + timedelta(minutes=rng.randint(5, 240)),
                metadata=meta,
            )
        )
    history.sort(key=lambda e: (e.asked_at or start, e.id))

    # -- house voice: answers on the current facts (style reference) ------------------------
    rng = _rng(seed, "house")
    house_examples = []
    for spec in rng.sample(list(specs), 8 if quick else 16):
        values = facts[(spec.id, version_at(spec.id, eval_at).version)]
        house_examples.append(_house(rng, spec.house.format(**values)))

    return SupportScenario(
        seed=seed,
        quick=quick,
        start=start,
        months=months,
        history_months=history_months,
        eval_at=eval_at,
        change_rate=per_month / len(specs),
        documents=documents,
        tools=tools,
        suite=suite,
        tool_examples=tool_examples,
        history=history,
        house_examples=house_examples,
        log_rows_per_month=20 if quick else 60,
        _facts=facts,
    )
