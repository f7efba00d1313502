"""Build the embedded benchmark sets (written by us, in the real record schemas).

    python data/embedded/build.py      # rewrites data/embedded/{livecodebench,sciknoweval,math500}/{train,test}.jsonl

Deterministic: the same script gives byte-identical files. Expected outputs are
computed by the reference solutions below, so every test is right by construction.
Code problems are easy on purpose: SmolLM2-135M-Instruct should solve some of them.
"""

from __future__ import annotations

import json
import random
import sys
from fractions import Fraction
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from vpd_core.data.benchmarks import minicode  # noqa: E402
from vpd_core.data.benchmarks.livecodebench import encode_tests  # noqa: E402

# ----------------------------------------------------------------------------- code (LiveCodeBench schema)
# (slug, title, statement, reference on parsed input, input generator) — stdin problems
STDIN = [
    ("sum2", "Sum of Two", "Read two integers A and B on one line and print A+B.", lambda a: a[0] + a[1], 2),
    ("diff2", "Difference", "Read two integers A and B on one line and print A-B.", lambda a: a[0] - a[1], 2),
    ("prod2", "Product", "Read two integers A and B on one line and print A*B.", lambda a: a[0] * a[1], 2),
    ("max3", "Largest of Three", "Read three integers on one line and print the largest.", max, 3),
    ("min3", "Smallest of Three", "Read three integers on one line and print the smallest.", min, 3),
    ("sum5", "Sum of Five", "Read five integers on one line and print their sum.", sum, 5),
    ("double", "Double It", "Read one integer N and print 2*N.", lambda a: 2 * a[0], 1),
    ("square", "Square", "Read one integer N and print N squared.", lambda a: a[0] ** 2, 1),
    ("parity", "Even or Odd", "Read one integer N. Print Even if N is even, otherwise print Odd.",
     lambda a: "Even" if a[0] % 2 == 0 else "Odd", 1),
    ("sign", "Sign", "Read one integer N. Print Positive, Negative or Zero.",
     lambda a: "Positive" if a[0] > 0 else "Negative" if a[0] < 0 else "Zero", 1),
    ("abs", "Absolute Value", "Read one integer N and print its absolute value.", lambda a: abs(a[0]), 1),
    ("avg2", "Average", "Read two integers A and B and print (A+B)/2 as a decimal number.", lambda a: (a[0] + a[1]) / 2, 2),
    ("mod", "Remainder", "Read two positive integers A and B and print A mod B.", lambda a: a[0] % a[1], 2),
    ("countdown", "Countdown", "Read a positive integer N and print N, N-1, ..., 1 separated by spaces.",
     lambda a: " ".join(str(i) for i in range(a[0], 0, -1)), 1),
    ("range_sum", "Sum 1..N", "Read a positive integer N and print 1+2+...+N.", lambda a: a[0] * (a[0] + 1) // 2, 1),
    ("factorial", "Factorial", "Read an integer N (0 <= N <= 20) and print N!.",
     lambda a: __import__("math").factorial(a[0]), 1),
    ("reverse_list", "Reverse", "Read five integers on one line and print them in reverse order, separated by spaces.",
     lambda a: " ".join(map(str, a[::-1])), 5),
    ("sort3", "Sort Three", "Read three integers on one line and print them in increasing order, separated by spaces.",
     lambda a: " ".join(map(str, sorted(a))), 3),
    ("maxmin", "Max Minus Min", "Read five integers on one line and print the largest minus the smallest.",
     lambda a: max(a) - min(a), 5),
    ("count_pos", "Count Positives", "Read five integers on one line and print how many are positive.",
     lambda a: sum(x > 0 for x in a), 5),
    ("hello", "Greeting", "Read a name (one word) and print Hello, followed by a space and the name.", None, "word"),
    ("strlen", "Length", "Read one word and print its length.", None, "word"),
]
# (fn_name, title, statement, reference on args, arg generator) — functional (LeetCode-style)
FUNCTIONAL = [
    ("addTwo", "add-two", "Return the sum of a and b.", lambda a, b: a + b, "ii"),
    ("maxOfList", "max-of-list", "Given a list of integers nums, return the largest element.", lambda n: max(n), "l"),
    ("sumList", "sum-of-list", "Given a list of integers nums, return their sum.", lambda n: sum(n), "l"),
    ("countEvens", "count-evens", "Given a list of integers nums, return how many are even.", lambda n: sum(x % 2 == 0 for x in n), "l"),
    ("reverseList", "reverse-list", "Given a list of integers nums, return it reversed.", lambda n: n[::-1], "l"),
    ("isPalindrome", "palindrome-string", "Given a string s, return true if it reads the same backwards.", lambda s: s == s[::-1], "s"),
    ("reverseString", "reverse-string", "Given a string s, return it reversed.", lambda s: s[::-1], "s"),
    ("countVowels", "count-vowels", "Given a lowercase string s, return the number of vowels (a, e, i, o, u).",
     lambda s: sum(c in "aeiou" for c in s), "s"),
    ("firstElement", "first-element", "Given a non-empty list nums, return its first element.", lambda n: n[0], "l"),
    ("lastElement", "last-element", "Given a non-empty list nums, return its last element.", lambda n: n[-1], "l"),
    ("doubleAll", "double-all", "Given a list of integers nums, return a list with every element doubled.", lambda n: [2 * x for x in n], "l"),
    ("sortList", "sort-list", "Given a list of integers nums, return it sorted in increasing order.", lambda n: sorted(n), "l"),
    ("minOfList", "min-of-list", "Given a list of integers nums, return the smallest element.", lambda n: min(n), "l"),
    ("isEven", "is-even", "Given an integer n, return true if n is even.", lambda n: n % 2 == 0, "i"),
    ("square", "square-number", "Given an integer n, return n * n.", lambda n: n * n, "i"),
    ("maxOfTwo", "max-of-two", "Return the larger of a and b.", lambda a, b: max(a, b), "ii"),
    ("countChar", "count-char", "Given a string s and a single character c, return how many times c occurs in s.",
     lambda s, c: s.count(c), "sc"),
    ("uniqueCount", "unique-count", "Given a list of integers nums, return the number of distinct values.", lambda n: len(set(n)), "l"),
    ("sumOfSquares", "sum-of-squares", "Given a list of integers nums, return the sum of their squares.", lambda n: sum(x * x for x in n), "l"),
    ("absDiff", "absolute-difference", "Return |a - b|.", lambda a, b: abs(a - b), "ii"),
]
WORDS = ["apple", "level", "banana", "racecar", "kayak", "python", "noon", "stats", "vpd", "teacher", "abcba", "xyz"]


def stdin_case(rng, slug, ref, arity):
    if arity == "word":
        w = rng.choice(WORDS)
        return f"{w}\n", (f"Hello {w}" if slug == "hello" else str(len(w))) + "\n"
    if slug == "factorial":
        args = [rng.randint(0, 12)]
    elif slug in ("mod",):
        args = [rng.randint(1, 100), rng.randint(1, 12)]
    elif slug in ("countdown", "range_sum"):
        args = [rng.randint(1, 9)]
    else:
        args = [rng.randint(-50, 50) for _ in range(arity)]
    out = ref(args)
    return " ".join(map(str, args)) + "\n", f"{out}\n"


def fn_args(rng, spec):
    out = []
    for ch in spec:
        if ch == "i":
            out.append(rng.randint(-30, 30))
        elif ch == "l":
            out.append([rng.randint(-9, 9) for _ in range(rng.randint(1, 6))])
        elif ch == "s":
            out.append(rng.choice(WORDS))
        elif ch == "c":
            out.append(rng.choice("aeiostn"))
    return out


def code_records(rng):
    records = []
    dates = ["2024-11-02", "2025-01-18", "2025-02-08", "2025-03-15", "2025-04-12", "2025-04-26"]
    for i, (slug, title, statement, ref, arity) in enumerate(STDIN):
        cases = [stdin_case(rng, slug, ref, arity) for _ in range(7)]
        tests = [{"input": a, "output": b, "testtype": "stdin"} for a, b in cases]
        content = f"{statement}\n\nSample Input 1\n\n{tests[0]['input']}\nSample Output 1\n\n{tests[0]['output']}"
        records.append({
            "question_title": title, "question_content": content, "platform": "atcoder",
            "question_id": f"emb{i:03d}_a", "contest_id": f"emb{i:03d}", "contest_date": f"{dates[i % len(dates)]}T12:00:00",
            "starter_code": "", "difficulty": "easy" if i % 4 else "medium",
            "public_test_cases": json.dumps(tests[:2]), "private_test_cases": encode_tests(tests[2:]), "metadata": "{}",
        })
    for i, (fn, slug, statement, ref, spec) in enumerate(FUNCTIONAL):
        names = {"i": "n", "l": "nums", "s": "s", "c": "c"}
        params = ["a", "b"] if spec == "ii" else [names[ch] for ch in spec]
        types = {"i": "int", "l": "List[int]", "s": "str", "c": "str"}
        sig = ", ".join(f"{p}: {types[ch]}" for p, ch in zip(params, spec))
        ret = type(ref(*fn_args(random.Random(0), spec))).__name__.replace("list", "List[int]")
        starter = f"class Solution:\n    def {fn}(self, {sig}) -> {ret}:\n        "
        tests = []
        for _ in range(7):
            args = fn_args(rng, spec)
            tests.append({"input": "\n".join(json.dumps(a) for a in args), "output": json.dumps(ref(*args)), "testtype": "functional"})
        content = f"{statement}\n\nExample 1:\n\nInput: {', '.join(f'{p} = {json.loads(x)}' for p, x in zip(params, tests[0]['input'].split(chr(10))))}\nOutput: {tests[0]['output']}"
        records.append({
            "question_title": slug, "question_content": content, "platform": "leetcode",
            "question_id": str(9000 + i), "contest_id": f"weekly-contest-{900 + i}",
            "contest_date": f"{dates[(i + 3) % len(dates)]}T18:30:00", "starter_code": starter,
            "difficulty": "easy" if i % 5 else "medium",
            "public_test_cases": json.dumps(tests[:2]), "private_test_cases": encode_tests(tests[2:]),
            "metadata": json.dumps({"func_name": fn}),
        })
    return records


# ----------------------------------------------------------------------------- science MCQ (SciKnowEval schema)
# (domain, task, question, correct, distractors)
SCIENCE = [
    ("Chemistry", "molar_weight_calculation", "What is the approximate molar mass of water (H2O) in g/mol?", "18", ["16", "20", "32"]),
    ("Chemistry", "molar_weight_calculation", "What is the approximate molar mass of carbon dioxide (CO2) in g/mol?", "44", ["28", "32", "60"]),
    ("Chemistry", "molar_weight_calculation", "What is the approximate molar mass of sodium chloride (NaCl) in g/mol?", "58.5", ["35.5", "23", "74.5"]),
    ("Chemistry", "sci_calculate", "How many moles are in 36 g of water?", "2", ["1", "3", "0.5"]),
    ("Chemistry", "sci_calculate", "What is the pH of a 0.01 M HCl solution?", "2", ["1", "12", "7"]),
    ("Chemistry", "reaction_prediction", "What gas is produced when zinc reacts with hydrochloric acid?", "Hydrogen", ["Oxygen", "Chlorine", "Nitrogen"]),
    ("Chemistry", "balancing_chemical_equation", "In 2H2 + O2 -> 2H2O, how many molecules of O2 react with 4 molecules of H2?", "2", ["1", "4", "8"]),
    ("Chemistry", "molecule_structure_prediction", "How many covalent bonds does carbon usually form?", "4", ["2", "3", "6"]),
    ("Chemistry", "sci_calculate", "Is a solution with pH 9 acidic or basic?", "Basic", ["Acidic"]),
    ("Chemistry", "reaction_prediction", "Does adding a catalyst change the equilibrium constant of a reaction?", "No", ["Yes"]),
    ("Chemistry", "sci_calculate", "What is the oxidation state of oxygen in H2O?", "-2", ["+2", "-1", "0"]),
    ("Physics", "high_school_physics_calculation", "A car travels 100 m in 5 s at constant speed. What is its speed in m/s?", "20", ["5", "50", "500"]),
    ("Physics", "high_school_physics_calculation", "What force in newtons accelerates a 2 kg mass at 3 m/s^2?", "6", ["1.5", "5", "9"]),
    ("Physics", "high_school_physics_calculation", "What is the kinetic energy in joules of a 2 kg mass moving at 3 m/s?", "9", ["6", "18", "3"]),
    ("Physics", "general_physics_calculation", "What is the resistance in ohms if 12 V drives 3 A through a resistor?", "4", ["36", "9", "15"]),
    ("Physics", "general_physics_calculation", "What power in watts is used by a device drawing 2 A at 5 V?", "10", ["2.5", "7", "25"]),
    ("Physics", "high_school_physics_calculation", "An object falls from rest for 2 s (g = 10 m/s^2). What is its speed in m/s?", "20", ["10", "40", "5"]),
    ("Physics", "general_physics_calculation", "What is the frequency in Hz of a wave with period 0.5 s?", "2", ["0.5", "5", "1"]),
    ("Physics", "high_school_physics_calculation", "Does a heavier object fall faster than a lighter one in a vacuum?", "No", ["Yes"]),
    ("Physics", "general_physics_calculation", "What is the momentum in kg m/s of a 4 kg mass moving at 2 m/s?", "8", ["2", "6", "16"]),
    ("Physics", "general_physics_calculation", "Is sound able to travel through a vacuum?", "No", ["Yes"]),
    ("Biology", "sci_calculate", "How many chromosomes does a normal human somatic cell have?", "46", ["23", "44", "48"]),
    ("Biology", "sci_calculate", "Which organelle produces most of the cell's ATP?", "Mitochondrion", ["Ribosome", "Nucleus", "Golgi apparatus"]),
    ("Biology", "sci_calculate", "Which molecule carries genetic information in most organisms?", "DNA", ["ATP", "Glucose", "Collagen"]),
    ("Biology", "solubility_prediction", "Which base pairs with adenine in DNA?", "Thymine", ["Cytosine", "Guanine", "Uracil"]),
    ("Biology", "sci_calculate", "In a cross Aa x Aa, what fraction of offspring are aa?", "1/4", ["1/2", "3/4", "0"]),
    ("Biology", "stability_prediction", "Are enzymes usually proteins?", "Yes", ["No"]),
    ("Biology", "sci_calculate", "Which process do plants use to make glucose from light?", "Photosynthesis", ["Respiration", "Fermentation", "Transpiration"]),
    ("Biology", "sci_calculate", "How many codons code for amino acids out of 64?", "61", ["64", "20", "60"]),
    ("Biology", "stability_prediction", "Does RNA contain the sugar ribose?", "Yes", ["No"]),
    ("Biology", "sci_calculate", "What is the monomer of a protein?", "Amino acid", ["Nucleotide", "Fatty acid", "Monosaccharide"]),
    ("Material", "material_calculation", "Which material is a good electrical conductor?", "Copper", ["Glass", "Rubber", "Wood"]),
    ("Material", "material_calculation", "What is the density in g/cm^3 of a 20 g sample with volume 10 cm^3?", "2", ["0.5", "10", "200"]),
    ("Material", "lattice_volume_calculation", "What is the volume in cubic angstroms of a cubic cell with edge 2 angstroms?", "8", ["4", "6", "16"]),
    ("Material", "material_calculation", "Is diamond harder than graphite?", "Yes", ["No"]),
    ("Material", "perovskite_stability_prediction", "What is the general formula of a perovskite?", "ABX3", ["AB2", "A2B", "AX"]),
    ("Material", "valence_electron_difference_calculation", "How many valence electrons does silicon have?", "4", ["2", "3", "6"]),
    ("Material", "material_calculation", "Which material is a semiconductor?", "Silicon", ["Copper", "Quartz glass", "Polyethylene"]),
    ("Material", "diffusion_rate_analysis", "Does diffusion in solids usually speed up at higher temperature?", "Yes", ["No"]),
    ("Material", "valence_electron_difference_calculation", "How many valence electrons does aluminium have?", "3", ["1", "2", "5"]),
    ("Material", "material_calculation", "Which is a ceramic material?", "Alumina", ["Steel", "Nylon", "Brass"]),
    ("Chemistry", "sci_calculate", "How many protons does a carbon atom have?", "6", ["12", "4", "8"]),
    ("Physics", "general_physics_calculation", "What is the SI unit of force?", "Newton", ["Joule", "Watt", "Pascal"]),
    ("Biology", "sci_calculate", "Which blood cells carry oxygen?", "Red blood cells", ["White blood cells", "Platelets", "Plasma cells"]),
]
SYSTEM_MCQ = "Given a question and four options, please select the right answer. Your answer should be \"A\", \"B\", \"C\" or \"D\"."
SYSTEM_MCQ2 = "Given a question and two options, please select the right answer. Your answer should be \"A\" or \"B\"."


def science_records(rng):
    out = []
    for i, (domain, task, question, right, wrong) in enumerate(SCIENCE):
        options = [right, *wrong]
        rng.shuffle(options)
        labels = "ABCD"[: len(options)]
        kind = "mcq-4-choices" if len(options) == 4 else "mcq-2-choices"
        out.append({
            "prompt": {"default": SYSTEM_MCQ if len(options) == 4 else SYSTEM_MCQ2},
            "question": question,
            "choices": {"text": options, "label": list(labels)},
            "answerKey": labels[options.index(right)], "answer": "", "type": kind, "domain": domain,
            "details": {"level": "L3" if i % 6 else "L1", "task": task, "subtask": task, "source": "vpd-embedded"},
        })
    return out


# ----------------------------------------------------------------------------- math (MATH-500 schema)


def math_records(rng):
    out = []
    for i in range(24):
        kind = i % 4
        if kind == 0:
            a, b, c, d = rng.randint(1, 9), rng.randint(2, 9), rng.randint(1, 9), rng.randint(2, 9)
            v = Fraction(a, b) + Fraction(c, d)
            problem = f"Compute $\\frac{{{a}}}{{{b}}} + \\frac{{{c}}}{{{d}}}$. Express your answer as a common fraction."
            answer = str(v.numerator) if v.denominator == 1 else f"\\frac{{{v.numerator}}}{{{v.denominator}}}"
            subject, level = "Prealgebra", 2
        elif kind == 1:
            a, x, b = rng.randint(2, 9), rng.randint(-9, 9), rng.randint(-20, 20)
            problem = f"Solve for $x$: ${a}x + {b} = {a * x + b}$."
            problem = problem.replace("+ -", "- ")
            answer, subject, level = str(x), "Algebra", 1
        elif kind == 2:
            n = rng.randint(3, 12)
            problem = f"What is the sum of the interior angles, in degrees, of a convex polygon with {n} sides?"
            answer, subject, level = str(180 * (n - 2)), "Geometry", 2
        else:
            n, k = rng.randint(4, 9), rng.randint(1, 3)
            from math import comb

            problem = f"Compute $\\dbinom{{{n}}}{{{k}}}$."
            answer, subject, level = str(comb(n, k)), "Counting & Probability", 1
        out.append({"problem": problem, "solution": "", "answer": answer, "subject": subject, "level": level,
                    "unique_id": f"embedded/{subject.lower().replace(' & ', '_')}/{i}.json"})
    return out


def write_split(name: str, records: list[dict], test_fraction: float = 0.25) -> None:
    """A seeded quarter of each set is the test split (a stride would follow the generators' cycles)."""
    d = HERE / name
    d.mkdir(exist_ok=True)
    chosen = set(random.Random(f"split:{name}").sample(range(len(records)), round(test_fraction * len(records))))
    train = [r for i, r in enumerate(records) if i not in chosen]
    test = [r for i, r in enumerate(records) if i in chosen]
    for split, rows in (("train", train), ("test", test)):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    print(f"{name}: {len(train)} train, {len(test)} test")


def write_minicode() -> None:
    """The generated demonstration task, split by its own seed (vpd_core/data/benchmarks/minicode.py)."""
    d = HERE / "minicode"
    d.mkdir(exist_ok=True)
    parts = minicode.generate()
    for split, rows in parts.items():
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    print(f"minicode: {len(parts['train'])} train, {len(parts['test'])} test")


if __name__ == "__main__":
    rng = random.Random(20261127)
    write_split("livecodebench", code_records(rng))
    write_split("sciknoweval", science_records(rng))
    write_split("math500", math_records(rng))
    write_minicode()
