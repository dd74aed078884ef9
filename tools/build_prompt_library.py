#!/usr/bin/env python
"""Build ``monai_ext/prompts/prompt_library.json`` from the hand-written entries below.

Run once (or after editing an entry):

    python tools/build_prompt_library.py            # writes the package data file
    python tools/build_prompt_library.py --check    # only validates, exit 1 if the file is stale

Every description sentence here is written by the monai_ext authors (not copied from a
paper or an LLM dump).  Left/right pairs share the sentences that are really identical for
both sides and keep side-specific anatomy where it differs; ribs and vertebrae carry
level-specific facts.  Scheme (after TPP, paper 000): per modality three sentences,
``profile`` (what / where), ``shape`` and ``appearance`` (intensity / colour on that
modality), each one sentence of at most 30 words.

Canonical names follow rule R of docs/DESIGN.md section 8: TotalSegmentator labels lose
their underscores and a trailing side word moves to the front; the raw label name is
always a synonym.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "monai_ext" / "prompts" / "prompt_library.json"

VERSION = "1.0.0"
SOURCE = (
    "monai_ext prompt library: descriptions hand-written by the monai_ext authors following the "
    "TPP prompt scheme (three sentences per entity and modality: profile, shape, appearance; "
    "Text-Promptable Propagation, Ref-MISS benchmark). Targets: the datasets used by monai_ext "
    "(CVC-ClinicDB, carotid ultrasound, BUS-BRA, ACDC, BraTS 2013, ultrasound stills), all "
    "TotalSegmentator 'total' and 'total_mr' labels (names by rule R, raw label names as "
    "synonyms) and the 20 Ref-MISS entities. Built by tools/build_prompt_library.py."
)

SIDES = ("left", "right")
ENTRIES: list[dict] = []


def rule_r(raw: str) -> str:
    """Rule R of DESIGN.md section 8 (kept in sync with monai_ext.prompts.canonical_target_name)."""
    words = raw.replace("_", " ").split()
    if len(words) > 1 and words[-1].lower() in SIDES:
        words = [words[-1]] + words[:-1]
    return " ".join(words)


def add(name, synonyms, category, descriptions, sources=(), raw=()):
    """Register one entry; ``descriptions`` maps modality -> (profile, shape, appearance)."""
    syn = []
    for s in list(raw) + list(synonyms):
        if s != name and s not in syn:
            syn.append(s)
    ENTRIES.append(
        {
            "name": name,
            "synonyms": syn,
            "category": category,
            "modalities": list(descriptions),
            "descriptions": {
                m: {"profile": p, "shape": s, "appearance": a} for m, (p, s, a) in descriptions.items()
            },
            "sources": list(sources),
        }
    )


def ts(raw, synonyms, category, descriptions, ct=True, mr=False, extra_sources=()):
    """A TotalSegmentator label (name by rule R, raw name as synonym)."""
    sources = (["totalseg_ct:" + raw] if ct else []) + (["totalseg_mr:" + raw] if mr else [])
    add(rule_r(raw), synonyms, category, descriptions, list(sources) + list(extra_sources), raw=[raw])


# --------------------------------------------------------------------------------------
# Dataset targets (DESIGN.md section 8) and Ref-MISS lesions / cardiac structures
# --------------------------------------------------------------------------------------
add(
    "polyp",
    ["polyps", "colon polyp", "colonic polyp", "colorectal polyp", "intestinal polyp", "polyp in colon",
     "adenomatous polyp"],
    "lesion",
    {
        "endoscopy": (
            "A polyp is an abnormal growth protruding from the mucosal lining of the colon or rectum; some polyps can progress to colorectal cancer.",
            "Polyps are round, oval or lobulated bulges, either flat-based (sessile) or on a stalk (pedunculated), from a few millimetres to several centimetres.",
            "On colonoscopy a polyp looks pink to reddish, often redder than the surrounding mucosa, with a smooth or granular surface and bright specular highlights.",
        ),
    },
    ["cvc_clinicdb", "ref_miss"],
)
add(
    "common carotid artery",
    ["cca", "carotid artery", "common carotid", "carotid", "carotid lumen", "arteria carotis communis"],
    "vessel",
    {
        "ultrasound": (
            "The common carotid artery is the main artery on each side of the neck, carrying blood to the head before dividing into internal and external carotids.",
            "In transverse views it is a round or slightly oval ring about 6 to 8 mm wide; in longitudinal views a straight horizontal tube.",
            "On B-mode ultrasound its lumen is dark and anechoic, bounded by bright echogenic walls showing the thin intima-media layers, and it pulsates with the heartbeat.",
        ),
    },
    ["carotid_us"],
)
add(
    "breast lesion",
    ["breast mass", "breast tumour", "breast tumours", "breast nodule", "breast lump", "breast cancer",
     "breast lesions", "lesion in breast", "mass in breast", "tumour in breast", "breast carcinoma"],
    "lesion",
    {
        "ultrasound": (
            "A breast lesion is a focal abnormal area in breast tissue, such as a cyst, a benign fibroadenoma or a malignant carcinoma, graded with BI-RADS.",
            "Benign lesions tend to be oval, circumscribed and wider than tall; malignant ones are often irregular, angular or spiculated and may be taller than wide.",
            "On ultrasound solid lesions are usually hypoechoic, darker than the surrounding fat and glandular tissue, sometimes with posterior shadowing; simple cysts are black and anechoic.",
        ),
        "mr": (
            "A breast mass is a space-occupying benign or malignant lesion in the breast that contrast-enhanced MRI is used to detect and characterise.",
            "Masses are round, oval or irregular three-dimensional lesions with smooth, irregular or spiculated margins; malignant ones typically have irregular spiculated borders.",
            "On contrast-enhanced T1-weighted MRI the mass enhances brightly against darker fibroglandular tissue and suppressed fat, malignant ones often with fast uptake and washout.",
        ),
    },
    ["busbra", "ultrasound_stills", "ref_miss"],
)
add(
    "right ventricle",
    ["rv", "right ventricular cavity", "right ventricle cavity", "rv cavity", "rv blood pool",
     "right heart ventricle", "right cardiac ventricle"],
    "cardiac",
    {
        "mr": (
            "The right ventricle is the heart chamber that receives blood from the right atrium and pumps it through the pulmonary valve to the lungs.",
            "On short-axis slices its cavity is a crescent wrapped around the front and right side of the round left ventricle, shrinking toward the apex.",
            "On cine bright-blood MRI the right ventricular blood pool is bright, bordered by a thin dark wall and trabeculations, against the darker lung and fat.",
        ),
    },
    ["acdc", "ref_miss"],
)
add(
    "myocardium",
    ["myo", "left ventricular myocardium", "left ventricle myocardium", "lv myocardium", "heart muscle",
     "cardiac muscle", "myocardial wall", "lv wall", "left ventricular wall"],
    "cardiac",
    {
        "mr": (
            "The myocardium is the heart muscle; in cardiac segmentation it is the wall of the left ventricle that contracts to pump blood into the aorta.",
            "On short-axis slices the left ventricular myocardium is a ring about 6 to 12 mm thick around the round cavity, thickening during systole.",
            "On cine bright-blood MRI the myocardium is a dark grey band, clearly darker than the bright blood inside the ventricles.",
        ),
        "ultrasound": (
            "The myocardium is the muscular wall of the heart; echocardiography examines the left ventricular wall to judge its thickness and contraction.",
            "In apical four- and two-chamber views the left ventricular myocardium is an inverted U-shaped band around the cavity, thinning toward the apex.",
            "On echocardiography the myocardium is a speckled medium-grey band, brighter than the dark blood-filled cavity and fainter than the bright pericardium.",
        ),
    },
    ["acdc", "ref_miss"],
)
add(
    "left ventricle",
    ["lv", "left ventricular cavity", "left ventricle cavity", "lv cavity", "lv blood pool", "left heart ventricle",
     "left cardiac ventricle"],
    "cardiac",
    {
        "mr": (
            "The left ventricle is the thick-walled heart chamber that receives oxygenated blood from the left atrium and pumps it through the aortic valve to the body.",
            "On short-axis slices the left ventricular cavity is a round disc surrounded by the myocardial ring, smaller toward the apex and in systole.",
            "On cine bright-blood MRI the cavity is bright white, surrounded by dark grey myocardium, with small dark papillary muscles inside it.",
        ),
        "ultrasound": (
            "The left ventricle is the main pumping chamber of the heart, ejecting blood into the aorta; its size and ejection fraction are measured on echocardiography.",
            "In apical views the left ventricular cavity is an elongated bullet or cone, with its apex at the top of the sector and the mitral valve at its base.",
            "On echocardiography the cavity is dark, nearly anechoic blood, outlined by the brighter grey myocardium and the echogenic mitral valve leaflets.",
        ),
    },
    ["acdc", "ultrasound_stills", "ref_miss"],
)
add(
    "left atrium",
    ["la", "left atrial cavity", "left heart atrium", "left atrial chamber", "left cardiac atrium"],
    "cardiac",
    {
        "mr": (
            "The left atrium is the upper left heart chamber that receives oxygenated blood from the pulmonary veins and passes it through the mitral valve.",
            "It is a roughly oval chamber at the back of the heart, with the pulmonary veins entering its posterior wall and a small finger-like appendage.",
            "On bright-blood or contrast-enhanced MRI the left atrial blood pool is bright and homogeneous, bounded by a thin wall against darker lung and mediastinum.",
        ),
        "ultrasound": (
            "The left atrium is the heart chamber collecting blood from the lungs through the pulmonary veins; its enlargement signals raised filling pressure or valve disease.",
            "In apical four- and two-chamber views it is an oval chamber at the bottom of the sector, below the left ventricle beyond the mitral valve.",
            "On echocardiography the left atrium is a dark anechoic blood-filled space with thin brighter walls, lying far from the probe.",
        ),
    },
    ["ultrasound_stills", "ref_miss"],
)
add(
    "pubic symphysis",
    ["symphysis pubis", "pubic joint", "public symphysis", "symphysis", "pubic symphysis joint"],
    "bone",
    {
        "ultrasound": (
            "The pubic symphysis is the cartilaginous joint joining the two pubic bones at the front of the pelvis, a landmark in transperineal labour ultrasound.",
            "In a transperineal midsagittal view it is a small elongated oval tilted obliquely, used as the reference line for the fetal head angle of progression.",
            "On ultrasound it appears as a bright echogenic oval outline of bone and cartilage with a darker centre, with some acoustic shadow behind it.",
        ),
    },
    ["ultrasound_stills"],
)
add(
    "fetal head",
    ["fetal skull", "head of fetus", "fetal cranium", "baby head", "fetus head", "fetal head circumference"],
    "structure",
    {
        "ultrasound": (
            "The fetal head is the head of the unborn baby; ultrasound measures it to assess growth and, during labour, to follow its descent through the birth canal.",
            "It is an ellipse outlined by the skull; in transperineal labour views it is a large rounded oval lying behind the pubic symphysis along the birth canal.",
            "The skull forms a bright echogenic elliptical ring around the darker, mid-grey brain, often casting acoustic shadow behind the bone.",
        ),
    },
    ["ultrasound_stills"],
)
add(
    "necrosis",
    ["necrotic core", "necrotic tumour core", "tumour necrosis", "necrotic tissue", "necrotic tumour",
     "necrotic part of tumour", "ncr"],
    "lesion",
    {
        "mr": (
            "Necrosis is dead tissue inside a brain tumour, typical of high-grade glioma, where tumour growth has outstripped its blood supply.",
            "It forms an irregular core in the centre of the tumour, usually surrounded by a thick rim of enhancing tumour.",
            "On MRI necrotic tissue does not enhance, is dark on contrast T1 and bright on T2, and looks heterogeneous and often less bright than oedema on FLAIR.",
        ),
    },
    ["brats2013"],
)
add(
    "oedema",
    ["peritumoral oedema", "peritumoural oedema", "peritumoral edema", "vasogenic oedema", "brain oedema",
     "tumour oedema", "oedema around tumour", "swelling around tumour"],
    "lesion",
    {
        "mr": (
            "Peritumoral oedema is swelling of the brain tissue around a tumour caused by fluid leaking from abnormal vessels, often containing infiltrating tumour cells.",
            "It is an irregular region with finger-like extensions along the white matter around the tumour core, often much larger than the tumour itself.",
            "On FLAIR and T2-weighted MRI oedema is bright (hyperintense) against the grey brain, and it does not enhance after contrast.",
        ),
    },
    ["brats2013"],
)
add(
    "non-enhancing tumour",
    ["nonenhancing tumour", "non enhancing tumour", "non-enhancing tumour core", "non-enhancing tumour part",
     "solid non-enhancing tumour", "non-enhancing lesion"],
    "lesion",
    {
        "mr": (
            "Non-enhancing tumour is solid glioma tissue that does not take up gadolinium contrast, often lower-grade or infiltrative tumour.",
            "It forms irregular patches inside or next to the tumour core, lying between the enhancing rim and the surrounding oedema.",
            "It is bright on T2 and FLAIR, similar to or slightly different from oedema, and stays grey without enhancement on contrast T1 images.",
        ),
    },
    ["brats2013"],
)
add(
    "enhancing tumour",
    ["enhancing tumour core", "contrast-enhancing tumour", "contrast enhancing tumour", "active tumour",
     "enhancing tumour part", "enhancing lesion"],
    "lesion",
    {
        "mr": (
            "Enhancing tumour is the actively growing part of a high-grade glioma, where a broken blood-brain barrier lets contrast agent leak into the tissue.",
            "It often forms a thick irregular ring around a necrotic centre, or nodular solid areas at the tumour margin.",
            "On contrast-enhanced T1 MRI it is bright compared with normal brain; on FLAIR it is moderately bright and hard to separate from oedema.",
        ),
    },
    ["brats2013"],
)
add(
    "brain tumour",
    ["glioma", "gliomas", "whole tumour", "brain tumours", "brain lesion", "intracranial tumour", "brain neoplasm",
     "brain mass", "brain cancer", "tumour in brain", "tumour of brain", "cerebral tumour"],
    "lesion",
    {
        "mr": (
            "A brain tumour is an abnormal mass of cells growing in the brain; for gliomas it comprises the necrotic core, solid tumour parts and surrounding oedema.",
            "It is usually a single irregular round or lobulated region in one hemisphere with ill-defined infiltrative borders, which may push the midline aside.",
            "On FLAIR MRI the whole tumour region is bright compared with normal brain, with a heterogeneous core and diffusely bright oedema around it.",
        ),
    },
    ["brats2013", "ref_miss"],
)
add(
    "liver tumour",
    ["liver tumours", "hepatic tumour", "liver lesion", "hepatic lesion", "liver cancer", "liver mass", "hepatic mass",
     "tumour of liver", "tumour in liver", "lesion in liver", "liver metastasis", "liver metastases",
     "hepatocellular carcinoma", "hcc"],
    "lesion",
    {
        "ct": (
            "A liver tumour is an abnormal growth in the liver, such as hepatocellular carcinoma or a metastasis spread from another organ.",
            "Liver tumours are round or oval focal lesions, single or multiple, from a few millimetres to many centimetres, with smooth or irregular margins.",
            "On portal venous CT most liver tumours are darker (hypodense) than the enhancing liver; some enhance brightly in the arterial phase and wash out later.",
        ),
    },
    ["ref_miss"],
)
add(
    "kidney tumour",
    ["kidney tumours", "renal tumour", "renal tumours", "renal mass", "kidney mass", "kidney cancer",
     "renal cell carcinoma", "rcc", "tumour of kidney", "tumour in kidney", "kidney lesion", "renal lesion",
     "renal neoplasm"],
    "lesion",
    {
        "ct": (
            "A kidney tumour is an abnormal mass arising in the kidney, in adults most often renal cell carcinoma, sometimes benign such as angiomyolipoma or oncocytoma.",
            "It is usually a round or oval mass bulging from the kidney outline or lying within the cortex, from small nodules to very large masses.",
            "On contrast CT a renal tumour is often heterogeneous and less dense than the brightly enhancing cortex, sometimes with darker necrotic or cystic parts.",
        ),
    },
    ["ref_miss"],
)

# --------------------------------------------------------------------------------------
# TotalSegmentator labels (total and total_mr) + Ref-MISS organs
# --------------------------------------------------------------------------------------
ts(
    "spleen",
    ["splenic parenchyma", "lien"],
    "organ",
    {
        "ct": (
            "The spleen is a lymphoid organ in the left upper abdomen that filters the blood, removes old red cells and supports immune responses.",
            "It is a crescent or bean-shaped organ about 12 cm long under the left diaphragm, with a convex outer and a concave inner surface.",
            "On portal venous CT the spleen is homogeneous soft tissue slightly brighter than the liver; in the arterial phase it can look striped or mottled.",
        ),
        "mr": (
            "The spleen is a blood-filtering lymphoid organ tucked under the left diaphragm, behind the stomach and above the left kidney.",
            "It is crescent or bean-shaped, about 12 cm long, following the curve of the left diaphragm with a notched inner border at its hilum.",
            "On MRI the spleen is homogeneous, darker than the liver on T1 and brighter than the liver on T2-weighted images.",
        ),
    },
    mr=True,
    extra_sources=["ref_miss"],
)
for side, other in (("right", "left"), ("left", "right")):
    where = (
        "it sits slightly lower than the left because the liver lies above it"
        if side == "right"
        else "it lies beside the spine under the spleen, slightly higher than the right"
    )
    ts(
        f"kidney_{side}",
        [f"{side} renal", f"{side} kidneys", f"kidney on {side}", f"{side} side kidney", f"renal {side}",
         f"{side} renal parenchyma"],
        "organ",
        {
            "ct": (
                f"The {side} kidney is a retroperitoneal organ that filters the blood to make urine; {where}.",
                f"It is bean-shaped and about 11 cm long, with a convex outer border and a medial hilum where the {side} renal vessels and ureter enter.",
                f"On contrast CT the {side} kidney has a brightly enhancing cortex, a medulla that brightens later, and dark perirenal fat around it.",
            ),
            "mr": (
                f"The {side} kidney is a paired urine-producing organ in the {side} retroperitoneum, lateral to the psoas muscle; {where}.",
                "It is an elongated bean shape with its upper pole tilted toward the spine and a concave hilum facing medially and forward.",
                f"On MRI the {side} kidney shows a cortex brighter than the medulla on T1, bright signal on T2, and is surrounded by bright fat on T1.",
            ),
        },
        mr=True,
        extra_sources=["ref_miss"],
    )
ts(
    "gallbladder",
    ["gall bladder", "gb", "cholecyst"],
    "organ",
    {
        "ct": (
            "The gallbladder is a small hollow organ under the liver that stores and concentrates bile and releases it into the duodenum after meals.",
            "It is a pear-shaped sac about 7 to 10 cm long lying in a fossa on the underside of the right liver lobe.",
            "On CT the gallbladder holds bile of near-water density, darker than the surrounding liver, with a thin enhancing wall; gallstones may show as bright foci.",
        ),
        "mr": (
            "The gallbladder is the bile reservoir attached to the underside of the liver, emptying through the cystic duct into the common bile duct.",
            "It is a pear- or teardrop-shaped sac with a rounded fundus pointing forward and down and a narrow neck pointing toward the liver hilum.",
            "On MRI bile in the gallbladder is very bright on T2 and usually dark on T1, although concentrated bile can look bright on T1.",
        ),
    },
    mr=True,
    extra_sources=["ref_miss"],
)
ts(
    "liver",
    ["hepar", "hepatic parenchyma", "liver parenchyma"],
    "organ",
    {
        "ct": (
            "The liver is the largest solid abdominal organ, in the right upper quadrant, processing nutrients, producing bile and clearing toxins from the blood.",
            "It is a large wedge-shaped organ with a smooth dome under the right diaphragm, extending across the midline, with a large right and smaller left lobe.",
            "On contrast CT the liver is a large homogeneous soft-tissue organ that enhances evenly, crossed by brighter portal and hepatic veins in the portal phase.",
        ),
        "mr": (
            "The liver is the large metabolic organ filling the right upper abdomen under the diaphragm, producing bile and filtering blood from the gut.",
            "It is a wedge shape, thick on the right and tapering to a thin left lobe, with a smooth convex upper surface under the diaphragm.",
            "On MRI the liver is slightly brighter than the spleen on T1 and darker than the spleen on T2, with uniform signal crossed by vessels.",
        ),
    },
    mr=True,
    extra_sources=["ref_miss"],
)
ts(
    "stomach",
    ["gaster", "gastric wall"],
    "organ",
    {
        "ct": (
            "The stomach is the digestive organ in the left upper abdomen that stores food and mixes it with acid and enzymes before passing it to the duodenum.",
            "It is a J-shaped hollow sac below the left diaphragm, with fundus, body and antrum, whose size and shape vary with filling.",
            "On CT the stomach has a soft-tissue wall with enhancing mucosa, its lumen holding dark gas, water-density fluid, food or bright oral contrast.",
        ),
        "mr": (
            "The stomach is a muscular hollow digestive organ between the esophagus and duodenum, lying under the left diaphragm in front of the pancreas.",
            "It is a curved J-shaped bag with a greater and lesser curvature, expanding when full and collapsing with thick folds when empty.",
            "On MRI the stomach wall has intermediate signal, fluid in the lumen is bright on T2, and gas is black.",
        ),
    },
    mr=True,
    extra_sources=["ref_miss"],
)
ts(
    "pancreas",
    ["pancreatic gland", "pancreatic parenchyma"],
    "organ",
    {
        "ct": (
            "The pancreas is a gland behind the stomach that makes digestive enzymes and hormones such as insulin, with a head, body and tail.",
            "It is a long, thin, lobulated organ lying across the upper abdomen, its head in the duodenal curve and its tail reaching the spleen.",
            "On contrast CT the pancreas is soft tissue that enhances well in the pancreatic phase, often with a lobulated outline speckled by fat.",
        ),
        "mr": (
            "The pancreas is a retroperitoneal gland with digestive and hormonal functions, lying across the spine behind the stomach at about the level of L1 to L2.",
            "It is an elongated, tongue-like organ, thicker at the head near the duodenum and tapering through the body to the tail at the splenic hilum.",
            "On fat-suppressed T1-weighted MRI the normal pancreas is one of the brightest abdominal organs; on T2 it is intermediate and darker than fluid.",
        ),
    },
    mr=True,
    extra_sources=["ref_miss"],
)
for side in ("right", "left"):
    if side == "right":
        shape = "It is a thin inverted V, Y or linear shape lying behind the inferior vena cava, between the liver and the right diaphragm crus."
    else:
        shape = "It is a thin inverted Y or lambda shape in front of the upper pole of the left kidney, beside the aorta and the left diaphragm crus."
    ts(
        f"adrenal_gland_{side}",
        [f"{side} adrenal", f"{side} suprarenal gland", f"{side} adrenal glands"],
        "organ",
        {
            "ct": (
                f"The {side} adrenal gland is a small endocrine gland above the {side} kidney that produces cortisol, aldosterone and adrenaline.",
                shape,
                "On CT its limbs are thin soft-tissue strands similar in density to muscle, standing out against the dark surrounding retroperitoneal fat.",
            ),
            "mr": (
                f"The {side} adrenal gland is a hormone-producing gland sitting on top of the {side} kidney in the retroperitoneum.",
                shape,
                "On MRI the adrenal gland has intermediate signal similar to or slightly darker than liver, outlined by bright fat on T1.",
            ),
        },
        mr=True,
    )

LOBES = {
    "lung_upper_lobe_left": (
        ["left upper lobe", "lul", "upper lobe of left lung", "left upper lung lobe"],
        "The left upper lobe is the upper of the two lobes of the left lung, including the lingula that lies next to the heart.",
        "It fills the apex and front of the left chest above and in front of the oblique fissure, with a tongue-like lingula reaching down in front.",
        "On CT it is dark air-filled lung with bright branching vessels and bronchial walls, separated from the lower lobe by a thin bright fissure line.",
    ),
    "lung_lower_lobe_left": (
        ["left lower lobe", "lll", "lower lobe of left lung", "left lower lung lobe"],
        "The left lower lobe is the lower, posterior lobe of the left lung, resting on the left half of the diaphragm.",
        "It is a wedge filling the back and base of the left chest below and behind the oblique fissure, its base curving over the diaphragm dome.",
        "On CT it is dark aerated lung with bright vessels, often slightly denser at the back in supine patients, bounded in front by the oblique fissure.",
    ),
    "lung_upper_lobe_right": (
        ["right upper lobe", "rul", "upper lobe of right lung", "right upper lung lobe"],
        "The right upper lobe is the top lobe of the right lung, supplied by the right upper lobe bronchus.",
        "It fills the apex and upper front of the right chest, bounded below by the horizontal fissure and behind by the oblique fissure.",
        "On CT it is dark air-filled lung with fine bright vessels, separated from the middle and lower lobes by thin fissure lines.",
    ),
    "lung_middle_lobe_right": (
        ["right middle lobe", "rml", "middle lobe of right lung", "middle lobe", "right middle lung lobe"],
        "The right middle lobe is the smallest lobe of the right lung, lying in front next to the right border of the heart.",
        "It is a triangular wedge in the anterior lower right chest between the horizontal and oblique fissures, tapering toward the hilum.",
        "On CT it is dark aerated lung with bright vessels, touching the right heart border and bounded by two thin fissure lines.",
    ),
    "lung_lower_lobe_right": (
        ["right lower lobe", "rll", "lower lobe of right lung", "right lower lung lobe"],
        "The right lower lobe is the large posterior basal lobe of the right lung, sitting on the diaphragm above the liver.",
        "It is a large wedge filling the back and base of the right chest behind the oblique fissure, its base curving over the right diaphragm dome.",
        "On CT it shows dark aerated parenchyma with bright vessels, commonly with slightly denser dependent areas posteriorly in supine scans.",
    ),
}
for raw, (syn, p, s, a) in LOBES.items():
    ts(raw, syn, "organ", {"ct": (p, s, a)})

ts(
    "esophagus",
    ["oesophagus", "gullet", "food pipe", "esophageal wall"],
    "organ",
    {
        "ct": (
            "The esophagus is the muscular tube that carries swallowed food and liquid from the throat down through the chest to the stomach.",
            "It is a collapsed tube about 25 cm long, small and round or flattened on axial slices, behind the trachea and left atrium beside the aorta.",
            "On CT it is a small soft-tissue structure with a muscle-like wall, sometimes containing a tiny black air bubble or fluid in its lumen.",
        ),
        "mr": (
            "The esophagus is the swallowing tube joining the pharynx to the stomach, running down the posterior mediastinum and through the diaphragm.",
            "It is a narrow tube, round or flat in cross-section, lying in front of the spine and bending left to join the stomach below the diaphragm.",
            "On MRI the esophagus has intermediate signal similar to muscle, with bright fluid or black air in its lumen when distended.",
        ),
    },
    mr=True,
)
ts(
    "trachea",
    ["windpipe", "tracheal lumen"],
    "organ",
    {
        "ct": (
            "The trachea is the windpipe, the airway running from the larynx down the neck into the chest, where it divides into the two main bronchi.",
            "It is a tube about 2 cm wide and 11 cm long in the midline, round or horseshoe-shaped in cross-section with a flat back wall.",
            "On CT its lumen is black air surrounded by a thin soft-tissue wall with C-shaped cartilage rings that may be bright when calcified.",
        ),
    },
)
ts(
    "thyroid_gland",
    ["thyroid", "thyroid lobes"],
    "organ",
    {
        "ct": (
            "The thyroid gland is an endocrine gland in the lower front of the neck that produces the hormones regulating metabolism.",
            "It is butterfly-shaped, with two lobes on either side of the trachea joined in front by a thin isthmus.",
            "On CT the thyroid is brighter than neck muscle even without contrast because of its iodine content, and it enhances strongly with contrast.",
        ),
    },
)
ts(
    "small_bowel",
    ["small intestine", "jejunum and ileum", "small bowel loops", "small intestinal loops", "jejunum", "ileum"],
    "organ",
    {
        "ct": (
            "The small bowel is the long part of the intestine, jejunum and ileum, where most nutrients are digested and absorbed.",
            "It is a coiled tube about 6 m long forming many loops in the central and lower abdomen, round or tubular on slices.",
            "On CT small bowel loops have thin enhancing walls and contain fluid, gas or oral contrast, giving a mixture of dark and grey content.",
        ),
        "mr": (
            "The small bowel connects the duodenum to the colon and is where most digestion and absorption of food takes place.",
            "It forms many folded loops filling the middle of the abdomen, the jejunum upper left with feathery folds and the ileum lower right.",
            "On MRI the small bowel has intermediate-signal walls, fluid content that is bright on T2 and black gas, appearing as many round and tubular loops.",
        ),
    },
    mr=True,
)
ts(
    "duodenum",
    ["duodenal wall", "duodenal loop"],
    "organ",
    {
        "ct": (
            "The duodenum is the first part of the small intestine, receiving food from the stomach together with bile and pancreatic juice.",
            "It is a C-shaped tube about 25 cm long curving around the head of the pancreas, from the pylorus to the duodenojejunal flexure.",
            "On CT the duodenum is a soft-tissue tube with an enhancing wall, often holding fluid or gas, lying against the pancreatic head.",
        ),
        "mr": (
            "The duodenum is the short first segment of the small bowel where bile and pancreatic enzymes are mixed with food from the stomach.",
            "It forms a C-loop around the pancreatic head, with superior, descending, horizontal and ascending parts, the horizontal part crossing in front of the spine.",
            "On MRI its wall has intermediate signal, with fluid bright on T2 and air black in the lumen, outlining the loop around the pancreas.",
        ),
    },
    mr=True,
)
ts(
    "colon",
    ["large bowel", "large intestine", "colonic wall"],
    "organ",
    {
        "ct": (
            "The colon is the large intestine, which absorbs water from digested food and forms stool, running from the caecum to the rectum.",
            "It is a wide tube framing the abdomen, ascending on the right, transverse across the top and descending on the left, with sac-like haustra.",
            "On CT the colon contains mottled stool and black gas inside a thin soft-tissue wall, its haustral folds giving a segmented outline.",
        ),
        "mr": (
            "The colon is the last main part of the digestive tract, storing stool and absorbing water before emptying into the rectum.",
            "It is a broad tube shaped like an inverted U around the small bowel, with pouch-like haustra and a looping sigmoid part in the pelvis.",
            "On MRI the colon shows black gas and mixed-signal stool within a thin intermediate-signal wall.",
        ),
    },
    mr=True,
)
ts(
    "urinary_bladder",
    ["bladder", "vesica urinaria", "urine bladder"],
    "organ",
    {
        "ct": (
            "The urinary bladder is a hollow muscular organ in the pelvis that collects urine from the kidneys and stores it until urination.",
            "When full it is a round or oval sac behind the pubic bones; when empty it is flattened and roughly triangular with a thicker wall.",
            "On CT the bladder holds urine of near-water density, darker than the surrounding soft tissue, unless excreted contrast makes it bright on delayed scans.",
        ),
        "mr": (
            "The urinary bladder is the urine reservoir in the front of the pelvis, resting on the pelvic floor behind the pubic symphysis.",
            "It is a rounded sac whose size depends on filling, domed on top when full and flattened against the pelvic floor when empty.",
            "On MRI urine is very bright on T2 and dark on T1, while the thin bladder wall is dark on T2.",
        ),
    },
    mr=True,
)
ts(
    "prostate",
    ["prostate gland", "prostatic gland", "prostatic tissue"],
    "organ",
    {
        "ct": (
            "The prostate is a male gland below the bladder that surrounds the urethra and produces part of the seminal fluid.",
            "It is walnut-shaped and about 4 cm wide, lying between the bladder base above and the pelvic floor below, in front of the rectum.",
            "On CT the prostate is rounded soft tissue similar in density to muscle, with little internal detail and sometimes small bright calcifications.",
        ),
        "mr": (
            "The prostate is a male accessory sex gland around the urethra, between the bladder neck and the pelvic floor, imaged by MRI to find cancer.",
            "It is an inverted cone or walnut shape with a broad base under the bladder and an apex pointing down toward the pelvic floor.",
            "On T2-weighted MRI the peripheral zone is bright, the central gland darker and nodular, all surrounded by a thin dark capsule.",
        ),
        "ultrasound": (
            "The prostate is a male gland below the bladder around the urethra; transrectal ultrasound is used to measure it and to guide biopsies.",
            "On transrectal ultrasound it is an oval or walnut-shaped gland in transverse views and a rounded triangle tapering to the apex in sagittal views.",
            "On ultrasound the gland has a fairly homogeneous medium-grey echotexture with a brighter capsule, the central gland often darker and more mottled than the periphery.",
        ),
    },
    mr=True,
    extra_sources=["ref_miss"],
)
for side in ("left", "right"):
    ts(
        f"kidney_cyst_{side}",
        [f"{side} renal cyst", f"cyst of {side} kidney", f"{side} kidney cysts", f"{side} renal cysts",
         f"cyst in {side} kidney"],
        "lesion",
        {
            "ct": (
                f"A {side} kidney cyst is a fluid-filled sac in the {side} kidney, usually a benign simple cyst found by chance.",
                "It is usually round or oval with a smooth thin wall, bulging from the cortex or sitting within the kidney, from millimetres to several centimetres.",
                "On CT a simple cyst has homogeneous near-water density (about 0 to 20 HU), does not enhance and stands out dark against the enhancing kidney.",
            ),
        },
    )
ts(
    "sacrum",
    ["sacral bone", "os sacrum"],
    "bone",
    {
        "ct": (
            "The sacrum is the large triangular bone at the base of the spine, formed by five fused sacral vertebrae, that links the spine to the pelvis.",
            "It is an inverted triangle curved forward, wedged between the two hip bones at the sacroiliac joints, with paired rows of sacral foramina.",
            "On CT the sacrum is bright bone with a dense cortical outline and a less dense cancellous interior, pierced by dark round sacral foramina.",
        ),
        "mr": (
            "The sacrum is the fused bony base of the spine forming the back wall of the pelvis and carrying the weight of the trunk to the hips.",
            "It is a curved wedge-shaped bone, broad above where L5 rests on it and narrowing down toward the coccyx.",
            "On MRI the sacrum has a dark cortical rim and marrow that is bright on T1 because of its fat, with sacral nerve roots running through its foramina.",
        ),
    },
    mr=True,
)

# -- vertebrae: level-specific profile and shape; appearance by region --------------------
ORDINAL = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh", 8: "eighth",
           9: "ninth", 10: "tenth", 11: "eleventh", 12: "twelfth"}
VERTEBRAE = {
    "S1": (
        "The S1 vertebra is the first sacral segment, the top of the sacrum, on which the L5 vertebra rests at the lumbosacral joint.",
        "It has a broad body whose upper front edge forms the sacral promontory, flanked by wing-like alae fused to the lower sacrum.",
    ),
    "L5": (
        "The L5 vertebra is the fifth and lowest lumbar vertebra, carrying the weight of the upper body onto the sacrum.",
        "It has the largest lumbar body, taller in front than behind (wedge-shaped), with thick cone-shaped transverse processes tied to the pelvis.",
    ),
    "L4": (
        "The L4 vertebra is the fourth lumbar vertebra, usually at the level of the iliac crests and of the aortic bifurcation.",
        "It has a large kidney-shaped body, short thick pedicles and a broad, square, horizontally projecting spinous process.",
    ),
    "L3": (
        "The L3 vertebra is the third lumbar vertebra in the middle of the lumbar spine, a common level for measuring muscle mass on CT.",
        "It has a large kidney-shaped body and the longest transverse processes of the lumbar spine, with psoas muscles on either side.",
    ),
    "L2": (
        "The L2 vertebra is the second lumbar vertebra, near the level where the spinal cord ends as the conus medullaris.",
        "It has a large kidney-shaped body with thick pedicles, a triangular spinal canal and a broad hatchet-shaped spinous process.",
    ),
    "L1": (
        "The L1 vertebra is the first lumbar vertebra, just below the thoracic spine at the thoracolumbar junction, without rib facets.",
        "Its kidney-shaped body is slightly smaller than the lower lumbar bodies, with short transverse processes and a broad spinous process.",
    ),
    "T12": (
        "The T12 vertebra is the last thoracic vertebra at the thoracolumbar junction, articulating with the twelfth pair of ribs.",
        "It is transitional: a thoracic vertebra whose body approaches lumbar size, with one rib facet per side and no facets on its transverse processes.",
    ),
    "T11": (
        "The T11 vertebra is the eleventh thoracic vertebra, which carries the eleventh pair of ribs, the first floating ribs.",
        "Its large body is nearly lumbar in form, with one complete rib facet on each side and short transverse processes lacking rib facets.",
    ),
    "T10": (
        "The T10 vertebra is the tenth thoracic vertebra in the lower chest, near the level where the esophagus passes through the diaphragm.",
        "It has a heart-shaped body with a single rib facet on each side for the tenth ribs and a spinous process sloping downward.",
    ),
    "T9": (
        "The T9 vertebra is the ninth thoracic vertebra, articulating with the ninth pair of ribs in the lower chest.",
        "It has a heart-shaped body with rib facets on its upper sides and transverse processes, and a long spinous process angled steeply down.",
    ),
    "T8": (
        "The T8 vertebra is the eighth thoracic vertebra, near the level where the inferior vena cava passes through the diaphragm.",
        "It is a typical thoracic vertebra with a heart-shaped body, a small round canal, rib facets and a long spinous process overlapping the next one.",
    ),
    "T7": (
        "The T7 vertebra is the seventh thoracic vertebra, roughly at the level of the lower tip of the scapula.",
        "It has a heart-shaped body with demifacets for the seventh and eighth ribs and the longest, most steeply sloping spinous process of the thoracic spine.",
    ),
    "T6": (
        "The T6 vertebra is the sixth thoracic vertebra in the middle of the chest, behind the heart and the descending aorta.",
        "It is a typical mid-thoracic vertebra: heart-shaped body, costal demifacets above and below, and a long downward-pointing spinous process.",
    ),
    "T5": (
        "The T5 vertebra is the fifth thoracic vertebra, just below the level of the tracheal bifurcation in the upper chest.",
        "It has a heart-shaped body flattened on its left side by the descending aorta, with rib facets and a long sloping spinous process.",
    ),
    "T4": (
        "The T4 vertebra is the fourth thoracic vertebra, at about the level of the sternal angle, the aortic arch and the tracheal bifurcation.",
        "It has a small heart-shaped body with rib facets on its sides and transverse processes, and a long spinous process pointing down.",
    ),
    "T3": (
        "The T3 vertebra is the third thoracic vertebra in the upper chest, roughly level with the spine of the scapula.",
        "It has a small body, smaller than the lower thoracic vertebrae, with costal facets for the third ribs and a slender sloping spinous process.",
    ),
    "T2": (
        "The T2 vertebra is the second thoracic vertebra, roughly at the level of the top of the sternum (jugular notch).",
        "Its body is small and somewhat cervical in form, with facets for the second ribs and a long spinous process.",
    ),
    "T1": (
        "The T1 vertebra is the first thoracic vertebra at the base of the neck, articulating with the first pair of ribs.",
        "Its body is broad and cervical-like, with a full facet for the first rib on each side and a long, nearly horizontal spinous process.",
    ),
    "C7": (
        "The C7 vertebra is the lowest cervical vertebra, the vertebra prominens, whose long spinous process is felt at the base of the neck.",
        "It has a small body, a long non-split spinous process and wide transverse processes with small foramina.",
    ),
    "C6": (
        "The C6 vertebra is the sixth cervical vertebra, at the level of the cricoid cartilage where the larynx continues into the trachea.",
        "It has a small oval body, transverse foramina, a prominent anterior (carotid) tubercle and a short forked spinous process.",
    ),
    "C5": (
        "The C5 vertebra is the fifth cervical vertebra in the lower neck, roughly behind the thyroid cartilage of the larynx.",
        "It has a small rectangular body with raised uncinate edges, a large triangular canal, holes in its transverse processes and a forked spinous process.",
    ),
    "C4": (
        "The C4 vertebra is the fourth cervical vertebra in the mid neck, near the level where the common carotid artery divides.",
        "It is a typical cervical vertebra: a small broad body, transverse foramina for the vertebral artery and a short bifid spinous process.",
    ),
    "C3": (
        "The C3 vertebra is the third cervical vertebra, the first typical cervical vertebra below the axis, near the level of the hyoid bone.",
        "It has a small, wide, saddle-shaped body, transverse processes with foramina, a large triangular canal and a short forked spine.",
    ),
    "C2": (
        "The C2 vertebra, the axis, is the second cervical vertebra, whose dens forms the pivot around which the atlas and head rotate.",
        "It has a vertebral body topped by the tooth-like dens projecting upward, and a large, thick, forked spinous process.",
    ),
    "C1": (
        "The C1 vertebra, the atlas, is the top vertebra of the spine, supporting the skull at the atlanto-occipital joints.",
        "It is a bony ring without a body or spinous process, made of anterior and posterior arches joining two thick lateral masses.",
    ),
}
REGION = {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}
VERT_CT = {
    "C": "On CT this cervical vertebra is bright cortical bone around grey cancellous bone, with holes in the transverse processes and the dark spinal canal behind.",
    "T": "On CT this thoracic vertebra is bright bone with a dense rim and grey cancellous body, with rib heads joining its sides and the spinal canal behind.",
    "L": "On CT this lumbar vertebra shows a large bright-rimmed body of grey cancellous bone, a dark spinal canal behind and psoas muscles on either side.",
    "S": "On CT the S1 segment is bright cortical and cancellous bone continuous with the sacrum, with dark neural foramina and the L5-S1 disc above.",
}
EXTRA_VERT_SYN = {"C1": ["atlas", "atlas vertebra"], "C2": ["axis vertebra", "dens vertebra"],
                  "C7": ["vertebra prominens"], "S1": ["first sacral vertebra", "s1 segment"]}
for level, (profile, shape) in VERTEBRAE.items():
    region = level[0]
    n = int(level[1:])
    syn = [f"vertebra {level}", f"{level} vertebra", f"{level} vertebral body", f"vertebral body {level}",
           f"{ORDINAL[n]} {REGION[region]} vertebra"]
    if region == "T":
        syn += [f"vertebra th{n}", f"th{n} vertebra"]
    syn += EXTRA_VERT_SYN.get(level, [])
    ts(f"vertebrae_{level}", syn, "bone", {"ct": (profile, shape, VERT_CT[region])})

ts(
    "heart",
    ["whole heart", "cardiac silhouette", "heart chambers"],
    "organ",
    {
        "ct": (
            "The heart is the muscular pump in the middle of the chest that circulates blood through the lungs and the body.",
            "It is a cone-shaped organ about the size of a fist, lying obliquely between the lungs with its apex pointing down and to the left.",
            "On contrast CT the heart chambers are bright with contrast-filled blood, surrounded by grey myocardium and a thin pericardium within dark fat.",
        ),
        "mr": (
            "The heart is the four-chambered organ in the mediastinum whose atria and ventricles pump blood to the lungs and the rest of the body.",
            "It is a rounded cone resting on the diaphragm, its base facing back and right and its apex pointing forward, down and left.",
            "On bright-blood cine MRI the heart chambers are bright and the myocardium dark grey, with the walls moving through the cardiac cycle.",
        ),
    },
    mr=True,
)
ts(
    "aorta",
    ["aortic lumen", "thoracic aorta", "abdominal aorta", "aortic arch", "ascending aorta", "descending aorta"],
    "vessel",
    {
        "ct": (
            "The aorta is the largest artery, leaving the left ventricle, arching over the heart and descending through the chest and abdomen to supply the body.",
            "It is a thick tube about 2 to 3 cm wide; on axial slices it appears as round circles, in the abdomen one just in front of the spine.",
            "On contrast CT the aortic lumen is very bright and its wall may carry bright calcified plaques; without contrast it is grey like muscle.",
        ),
        "mr": (
            "The aorta is the main artery of the body, carrying oxygenated blood from the left ventricle through the chest and abdomen to all organs.",
            "It is a candy-cane tube, rising from the heart, arching back over the left main bronchus and running down left of the spine.",
            "On MRI flowing aortic blood is dark on black-blood sequences and bright on bright-blood or contrast-enhanced angiographic sequences.",
        ),
    },
    mr=True,
    extra_sources=["ref_miss"],
)
ts(
    "pulmonary_vein",
    ["pulmonary veins", "lung veins"],
    "vessel",
    {
        "ct": (
            "The pulmonary veins carry oxygen-rich blood from the lungs back to the left atrium of the heart, usually two from each lung.",
            "They are short tubes about 1 to 1.5 cm wide running roughly horizontally from each lung hilum to the back of the left atrium.",
            "On contrast CT the pulmonary veins are bright tubular structures entering the left atrium, outlined against the dark lung.",
        ),
    },
)
ts(
    "brachiocephalic_trunk",
    ["innominate artery", "brachiocephalic artery", "truncus brachiocephalicus"],
    "vessel",
    {
        "ct": (
            "The brachiocephalic trunk is the first branch of the aortic arch, supplying the right arm, neck and head through the right subclavian and carotid arteries.",
            "It is a short wide artery about 4 to 5 cm long, running up and to the right in front of the trachea before splitting in two.",
            "On contrast CT it is a bright round or oval vessel in the upper mediastinum, in front of and to the right of the trachea.",
        ),
    },
)
for side in ("right", "left"):
    origin = ("arises from the brachiocephalic trunk" if side == "right"
              else "is the third branch of the aortic arch")
    ts(
        f"subclavian_artery_{side}",
        [f"{side} subclavian", f"{side} arteria subclavia"],
        "vessel",
        {
            "ct": (
                f"The {side} subclavian artery {origin} and supplies the {side} arm, also giving off the {side} vertebral artery.",
                "It is an arching tube about 1 cm wide running from the upper mediastinum over the first rib, behind the clavicle, toward the armpit.",
                "On contrast CT it is a bright round or tubular vessel above the lung apex, behind the subclavian vein and the clavicle.",
            ),
        },
    )
for side in ("right", "left"):
    origin = ("arises from the brachiocephalic trunk" if side == "right"
              else "arises directly from the aortic arch")
    ts(
        f"common_carotid_artery_{side}",
        [f"{side} cca", f"{side} carotid artery", f"{side} carotid", f"{side} common carotid"],
        "vessel",
        {
            "ct": (
                f"The {side} common carotid artery {origin} and runs up the {side} side of the neck to supply the head.",
                "It is a straight tube about 6 to 8 mm wide running vertically beside the trachea and thyroid, a round circle on axial slices.",
                "On contrast CT it is a bright round vessel in the neck, lying medial to the internal jugular vein, which is darker in the arterial phase.",
            ),
        },
    )
ts(
    "brachiocephalic_vein_left",
    ["left innominate vein", "left brachiocephalic"],
    "vessel",
    {
        "ct": (
            "The left brachiocephalic vein drains blood from the left arm, head and neck and crosses the upper chest to join the superior vena cava.",
            "It is a long vein about 6 cm long running obliquely from left to right across the upper mediastinum in front of the aortic arch branches.",
            "On contrast CT it is bright, very bright when contrast is injected in the left arm, which can cause streak artefacts around it.",
        ),
    },
)
ts(
    "brachiocephalic_vein_right",
    ["right innominate vein", "right brachiocephalic"],
    "vessel",
    {
        "ct": (
            "The right brachiocephalic vein drains blood from the right arm, head and neck and joins the left one to form the superior vena cava.",
            "It is a short, nearly vertical vein about 2.5 cm long behind the right sternoclavicular joint, round or oval on axial slices.",
            "On contrast CT it enhances like other veins and is very bright when contrast is injected through the right arm.",
        ),
    },
)
ts(
    "atrial_appendage_left",
    ["laa", "left auricle", "left atrial auricle"],
    "cardiac",
    {
        "ct": (
            "The left atrial appendage is a small pouch of the left atrium where blood clots can form in atrial fibrillation.",
            "It is a finger- or windsock-shaped, often lobulated pouch projecting forward from the left atrium beside the pulmonary artery.",
            "On contrast CT it fills with bright contrast like the left atrium; a darker unfilled area may be clot or slow flow.",
        ),
    },
)
ts(
    "superior_vena_cava",
    ["svc", "vena cava superior"],
    "vessel",
    {
        "ct": (
            "The superior vena cava is the large vein that returns blood from the head, neck, arms and upper chest to the right atrium.",
            "It is a short wide vein about 2 cm across and 7 cm long, running vertically to the right of the ascending aorta, round on axial slices.",
            "On contrast CT it is a round vessel right of the aorta, very bright when contrast is injected into an arm vein.",
        ),
    },
)
ts(
    "inferior_vena_cava",
    ["ivc", "vena cava inferior", "inferior caval vein"],
    "vessel",
    {
        "ct": (
            "The inferior vena cava is the largest vein, carrying blood from the legs, pelvis and abdomen up to the right atrium.",
            "It is a wide tube running up the right side of the spine beside the aorta, oval or flattened on axial slices and varying with breathing.",
            "On contrast CT it enhances in the portal venous phase; in early arterial scans it can look mixed where unenhanced blood meets contrast.",
        ),
        "mr": (
            "The inferior vena cava is the main vein of the lower body, returning blood from the legs and abdominal organs through the liver to the heart.",
            "It is a broad tube running right of the aorta, partly enclosed by the liver before passing through the diaphragm, oval in cross-section.",
            "On MRI its flowing blood is dark on spin-echo or black-blood images and bright on gradient-echo or contrast-enhanced images.",
        ),
    },
    mr=True,
)
ts(
    "portal_vein_and_splenic_vein",
    ["portal vein", "splenic vein", "portal and splenic vein", "portal venous system", "portosplenic vein",
     "portal vein and splenic vein"],
    "vessel",
    {
        "ct": (
            "The portal and splenic veins carry blood from the spleen, stomach and intestines to the liver; the splenic vein joins the mesenteric vein to form the portal vein.",
            "The splenic vein runs horizontally behind the pancreas from the spleen; the portal vein runs obliquely up into the liver hilum and branches inside the liver.",
            "On portal venous phase CT these veins are bright tubular structures, the splenic vein tracing the back of the pancreas.",
        ),
        "mr": (
            "The portal venous system brings nutrient-rich blood from the gut and spleen to the liver, formed behind the pancreatic neck.",
            "It is a branching tube: a horizontal splenic vein behind the pancreas and a wide portal vein, about 1 cm across, entering the liver hilum.",
            "On contrast-enhanced MRI the portal and splenic veins are bright tubes; on T2 images their flowing blood often looks dark.",
        ),
    },
    mr=True,
)
for side in ("left", "right"):
    ts(
        f"iliac_artery_{side}",
        [f"{side} common iliac artery", f"{side} iliac arteries"],
        "vessel",
        {
            "ct": (
                f"The {side} iliac artery is one of the two terminal branches of the abdominal aorta, carrying blood to the pelvis and the {side} leg.",
                "It runs down and outward from the aortic bifurcation at about L4, across the pelvic brim, about 1 cm wide and round on axial slices.",
                "On contrast CT it is a bright round vessel, often with bright calcified plaque in its wall, lying in front of the iliac vein.",
            ),
            "mr": (
                f"The {side} iliac artery supplies the pelvic organs and, through the external iliac and femoral arteries, the {side} leg.",
                "It is a tube about 1 cm wide diverging from the aortic bifurcation down along the pelvic side wall, splitting into internal and external branches.",
                "On MR angiography the iliac artery is bright; on standard spin-echo images its flowing blood is dark.",
            ),
        },
        mr=True,
    )
for side in ("left", "right"):
    course = ("crossing behind the right common iliac artery to reach the inferior vena cava" if side == "left"
              else "running almost vertically up behind the right iliac artery to the inferior vena cava")
    ts(
        f"iliac_vena_{side}",
        [f"{side} iliac vein", f"{side} common iliac vein", f"{side} iliac veins"],
        "vessel",
        {
            "ct": (
                f"The {side} iliac vein drains blood from the {side} leg and pelvis and joins the opposite iliac vein to form the inferior vena cava.",
                f"It is a wide oval tube in the pelvis beside and behind the iliac artery, {course}.",
                "On portal venous CT it is a grey-to-bright oval vessel enhancing later than the artery; in arterial scans it is darker than the artery.",
            ),
            "mr": (
                f"The {side} iliac vein returns blood from the {side} leg and pelvic organs toward the inferior vena cava.",
                f"It is a wide tube along the pelvic side wall next to the iliac artery, {course}.",
                "On MRI the iliac vein has variable flow signal, dark on black-blood sequences and bright on venous-phase contrast images.",
            ),
        },
        mr=True,
    )


def bilateral(raw_base, synonyms_fn, category, fn, mr=True):
    for side in ("left", "right"):
        d = fn(side)
        ts(f"{raw_base}_{side}", synonyms_fn(side), category, d if mr else {"ct": d["ct"]}, mr=mr)


bilateral(
    "humerus",
    lambda s: [f"{s} upper arm bone", f"{s} humeral bone", f"{s} humeral head"],
    "bone",
    lambda s: {
        "ct": (
            f"The {s} humerus is the long bone of the {s} upper arm, running from the shoulder joint to the elbow.",
            "It is a long cylindrical shaft with a rounded head fitting the shoulder socket; body scans usually show only its upper part.",
            "On CT the humerus is bright cortical bone around a greyer marrow cavity, lying beside the chest wall within the arm.",
        ),
        "mr": (
            f"The {s} humerus is the upper arm bone that forms the ball of the {s} shoulder joint with the scapula.",
            "Its upper end is a smooth hemispherical head on a short neck, continuing into a long tubular shaft.",
            "On MRI the humerus has a black cortical shell and bright fatty marrow on T1, its round head sitting in the glenoid socket.",
        ),
    },
)
bilateral(
    "scapula",
    lambda s: [f"{s} shoulder blade", f"{s} scapular bone"],
    "bone",
    lambda s: {
        "ct": (
            f"The {s} scapula (shoulder blade) is the flat triangular bone of the upper back that connects the {s} arm to the trunk.",
            "It is a thin triangular plate over the back of the ribs with a bony ridge (spine), a shallow glenoid socket and the acromion and coracoid processes.",
            "On CT the scapula is a thin bright bony plate behind the rib cage, thickening at the spine, glenoid and acromion.",
        ),
        "mr": (
            f"The {s} scapula is the shoulder blade, the mobile flat bone that anchors the rotator cuff muscles of the {s} shoulder.",
            "It is a triangular blade with a thick lateral border ending in the pear-shaped glenoid, and a spine ending in the acromion.",
            "On MRI it has a black cortex and intermediate-to-bright marrow on T1, enveloped by the darker rotator cuff muscles.",
        ),
    },
)
bilateral(
    "clavicula",
    lambda s: [f"{s} clavicle", f"{s} collarbone", f"{s} collar bone"],
    "bone",
    lambda s: {
        "ct": (
            f"The {s} clavicle (collarbone) is the long bone running across the top of the chest from the sternum to the {s} shoulder.",
            "It is an S-shaped, roughly horizontal bone about 15 cm long, rounded medially and flattened laterally where it meets the acromion.",
            "On CT the clavicle is bright bone just under the skin at the base of the neck, an oval bony cross-section on axial slices.",
        ),
        "mr": (
            f"The {s} clavicle is the strut bone holding the {s} shoulder away from the chest, joining the sternum and the acromion.",
            "It is a slender S-curved rod lying horizontally above the first rib, thicker at its sternal end.",
            "On MRI the clavicle has a black cortical rim with bright fatty marrow on T1, lying just beneath the skin.",
        ),
    },
)
bilateral(
    "femur",
    lambda s: [f"{s} thigh bone", f"{s} femoral bone", f"{s} femoral head"],
    "bone",
    lambda s: {
        "ct": (
            f"The {s} femur (thigh bone) is the longest and strongest bone of the body, joining the {s} hip above and the knee below.",
            "Its upper end has a round head in the hip socket and a neck angled at about 125 degrees to a long cylindrical shaft.",
            "On CT the femur is bright with a thick dense cortex and a darker fatty marrow cavity in the shaft.",
        ),
        "mr": (
            f"The {s} femur is the thigh bone, forming the ball of the {s} hip joint and carrying body weight to the knee.",
            "It has a spherical head, a slanted neck, bony trochanters for muscle attachment and a long, slightly bowed shaft.",
            "On MRI the femur shows a black cortex and bright fatty marrow signal on T1, its head sitting in the acetabulum.",
        ),
    },
)
bilateral(
    "hip",
    lambda s: [f"{s} hip bone", f"{s} pelvic bone", f"{s} os coxae", f"{s} innominate bone", f"{s} coxal bone",
               f"{s} iliac bone", f"{s} ilium"],
    "bone",
    lambda s: {
        "ct": (
            f"The {s} hip bone is the large pelvic bone formed by the fused ilium, ischium and pubis, carrying the socket of the {s} hip joint.",
            "It is an irregular, propeller-like bone with a wide flaring iliac wing above, the cup-shaped acetabulum in the middle and a ring-like lower part.",
            "On CT the hip bone is bright cortical and cancellous bone forming the pelvic side wall, the iliac wing a curved bright plate.",
        ),
        "mr": (
            f"The {s} hip bone (os coxae) forms one side of the bony pelvis, joined to the sacrum behind and to the other hip bone at the symphysis.",
            "It combines a broad fan-like iliac wing, a deep round acetabulum and the ischial and pubic rami surrounding the obturator foramen.",
            "On MRI the hip bone has a black cortex and bright fatty marrow on T1, with gluteal and iliacus muscles lying against it.",
        ),
    },
)
ts(
    "spinal_cord",
    ["cord", "medulla spinalis"],
    "organ",
    {
        "ct": (
            "The spinal cord is the bundle of nerve tissue running through the vertebral canal, carrying signals between the brain and the body.",
            "It is a long thin cylinder about 1 cm wide, oval on axial slices, running from the brainstem down to end near L1 to L2.",
            "On CT the cord is hard to see: a grey oval inside the slightly darker cerebrospinal fluid of the canal, ringed by bright bone.",
        ),
        "mr": (
            "The spinal cord is the central nervous pathway inside the spine, continuous with the brainstem and giving off the spinal nerve roots.",
            "It is a slender cord, oval in cross-section and widened at the cervical and lumbar enlargements, tapering to the conus medullaris.",
            "On T2-weighted MRI the cord is an intermediate-grey oval surrounded by bright cerebrospinal fluid; on T1 the cord is brighter than the fluid.",
        ),
    },
    mr=True,
)

MUSCLE_CT = "On CT the {m} has soft-tissue muscle density, darker than bone and brighter than the fat around it, with fine dark fatty streaks."
MUSCLE_MR = "On MRI the {m} has low-to-intermediate muscle signal on T1 and T2, darker than the bright surrounding fat on T1."
GLUTEI = {
    "gluteus_maximus": (
        "gluteus maximus",
        "The {s} gluteus maximus is the large, superficial buttock muscle that extends and externally rotates the {s} hip.",
        "It is a thick, broad quadrilateral muscle forming the buttock, running obliquely from the sacrum and ilium down to the femur.",
    ),
    "gluteus_medius": (
        "gluteus medius",
        "The {s} gluteus medius is a hip abductor on the outer surface of the ilium that keeps the pelvis level when standing on the {s} leg.",
        "It is a broad fan-shaped muscle partly under the gluteus maximus, converging from the iliac wing onto the greater trochanter.",
    ),
    "gluteus_minimus": (
        "gluteus minimus",
        "The {s} gluteus minimus is the smallest and deepest gluteal muscle, helping to abduct and internally rotate the {s} hip.",
        "It is a thin fan-shaped muscle lying directly on the iliac wing beneath the gluteus medius, tapering to the front of the greater trochanter.",
    ),
    "autochthon": (
        "autochthonous back muscles",
        "The {s} autochthonous back muscles are the deep intrinsic back muscles (erector spinae and transversospinalis) that extend and stabilise the spine.",
        "They form a long column beside the spinous processes from the pelvis to the skull, rounded or rectangular on axial slices.",
    ),
    "iliopsoas": (
        "iliopsoas",
        "The {s} iliopsoas is the main hip flexor, formed by the psoas major from the lumbar spine and the iliacus from the inner iliac wing.",
        "The psoas is a long spindle beside the lumbar spine that joins the fan-shaped iliacus in the pelvis and passes in front of the hip.",
    ),
}
MUSCLE_SYN = {
    "gluteus_maximus": lambda s: [f"{s} gluteus maximus muscle", f"{s} gluteal maximus", f"{s} musculus gluteus maximus"],
    "gluteus_medius": lambda s: [f"{s} gluteus medius muscle", f"{s} musculus gluteus medius"],
    "gluteus_minimus": lambda s: [f"{s} gluteus minimus muscle", f"{s} musculus gluteus minimus"],
    "autochthon": lambda s: [f"{s} autochthonous back muscles", f"{s} autochthonous muscle", f"{s} erector spinae",
                             f"{s} paraspinal muscles", f"{s} paraspinal muscle", f"{s} deep back muscles"],
    "iliopsoas": lambda s: [f"{s} iliopsoas muscle", f"{s} psoas", f"{s} psoas muscle", f"{s} iliopsoas muscles"],
}
for raw_base, (mname, p, s_) in GLUTEI.items():
    for side in ("left", "right"):
        ts(
            f"{raw_base}_{side}",
            MUSCLE_SYN[raw_base](side),
            "muscle",
            {
                "ct": (p.format(s=side), s_, MUSCLE_CT.format(m=mname)),
                "mr": (p.format(s=side), s_, MUSCLE_MR.format(m=mname)),
            },
            mr=True,
        )

ts(
    "brain",
    ["cerebrum", "brain parenchyma", "encephalon"],
    "organ",
    {
        "ct": (
            "The brain is the central organ of the nervous system inside the skull, made up of the cerebral hemispheres, brainstem and cerebellum.",
            "It is a rounded ovoid mass filling the skull, with folded gyri and sulci on its surface and fluid-filled ventricles inside.",
            "On CT brain tissue is mid-grey, grey matter slightly brighter than white matter, with dark cerebrospinal fluid and bright skull around it.",
        ),
        "mr": (
            "The brain is the organ of thought, sensation and movement control, enclosed by the skull and bathed in cerebrospinal fluid.",
            "It consists of two large folded hemispheres over a central brainstem, with the cerebellum tucked underneath at the back.",
            "On T1 MRI white matter is brighter than grey matter and fluid is dark; on T2 the contrast reverses and cerebrospinal fluid is bright.",
        ),
    },
    mr=True,
)
ts(
    "skull",
    ["cranium", "skull bone", "calvaria", "neurocranium"],
    "bone",
    {
        "ct": (
            "The skull is the bony framework of the head that encloses and protects the brain and forms the face.",
            "It is a rounded bony vault of curved flat bones joined by sutures, above an irregular skull base and the facial bones.",
            "On CT the skull is very bright dense bone, with inner and outer cortical tables separated by less dense diploe.",
        ),
    },
)

# -- ribs: number-specific profile, shape and location ------------------------------------
RIBS = {
    1: ("the shortest, broadest and most curved rib, joined to T1 behind and the manubrium in front, with the subclavian vessels crossing it",
        "It is a short, flat, strongly curved C-shaped bone lying nearly horizontally at the top of the rib cage, just below the clavicle.",
        "around the lung apex at the base of the neck"),
    2: ("a true rib joined to T2 behind and, through its cartilage, to the sternal angle, a landmark for counting ribs",
        "It is about twice as long as the first rib, thin and curved, with a rough tubercle on its outer surface for the serratus anterior muscle.",
        "in the upper chest wall just under the first rib"),
    3: ("a true rib joined to T3 behind and directly to the sternum through its own costal cartilage",
        "It is a long, thin, curved bone sweeping from the spine around the upper chest to the front, longer than the two ribs above.",
        "in the upper chest wall under the pectoral muscles"),
    4: ("a true rib joined to T4 behind and to the sternum through its own costal cartilage, near the level of the male nipple",
        "It is a long curved bone arching around the upper chest and angling down toward the sternum.",
        "in the chest wall around the upper heart and the lung hila"),
    5: ("a true rib joined to T5 behind and to the sternum in front, lying at about the level of the heart apex",
        "It is a long, thin curved bone following the oval of the chest, its front end lower than its back end.",
        "in the mid chest wall around the heart"),
    6: ("a true rib joined to T6 behind and to the lower sternum through its costal cartilage",
        "It is one of the longest ribs, a thin curved bone slanting downward from the spine to the front of the lower chest.",
        "in the lower chest wall over the lower heart and the liver dome"),
    7: ("the last true rib, joined to T7 behind and by its cartilage to the sternum near the xiphisternal junction",
        "It is usually the longest rib, a long thin curved bone sweeping steeply downward and forward around the lower chest.",
        "in the lower chest wall beside the liver dome and diaphragm"),
    8: ("a false rib joined to T8 behind whose cartilage joins the cartilage above rather than the sternum, forming part of the costal margin",
        "It is a long, thin, curved bone slightly shorter than the seventh rib, sloping down around the lower chest.",
        "in the lower chest wall around the upper abdomen"),
    9: ("a false rib joined to T9 behind whose cartilage joins the rib above and forms part of the costal margin",
        "It is a thin curved bone shorter than the eighth rib, encircling the upper abdominal organs.",
        "in the lower chest wall around the liver, spleen and stomach"),
    10: ("the lowest false rib, joined to T10 behind, whose cartilage forms the lowest point of the costal margin",
         "It is a curved bone shorter than the ninth rib, wrapping around the upper abdomen with its cartilage curving upward in front.",
         "in the wall of the upper abdomen around the liver and spleen"),
    11: ("a floating rib joined only to T11 behind, its pointed front end lying free in the flank muscles",
         "It is short and slightly curved, with a tapered free end and no tubercle.",
         "in the back and flank around the kidneys"),
    12: ("the lowest floating rib, joined only to T12 behind, with its free end in the back muscles near the kidney",
         "It is a short, nearly straight bone of very variable length, often the shortest of all the ribs.",
         "in the back behind the upper kidney and the diaphragm"),
}
NUM_WORD = {1: "1st", 2: "2nd", 3: "3rd"}
for side in ("left", "right"):
    for n, (fact, shape, where) in RIBS.items():
        nth = NUM_WORD.get(n, f"{n}th")
        syn = [f"{side} rib {n}", f"rib {n} {side}", f"{side} {nth} rib", f"{side} {ORDINAL[n]} rib",
               f"{ORDINAL[n]} {side} rib", f"{nth} {side} rib", f"{side} rib number {n}"]
        ts(
            f"rib_{side}_{n}",
            syn,
            "bone",
            {
                "ct": (
                    f"The {side} {ORDINAL[n]} rib is {fact}.",
                    shape,
                    f"On CT it is a thin curved band of bright cortical bone with greyer marrow, seen {where}.",
                ),
            },
        )
ts(
    "sternum",
    ["breastbone", "breast bone", "sternal bone"],
    "bone",
    {
        "ct": (
            "The sternum (breastbone) is the flat bone in the front midline of the chest that anchors the clavicles and the cartilages of the upper ribs.",
            "It is a long, flat, dagger-like bone of three parts: the broad manubrium, the long body and the small xiphoid process.",
            "On CT the sternum is a flat bright cortical outline around grey cancellous bone, just under the skin in front of the heart.",
        ),
    },
)
ts(
    "costal_cartilages",
    ["costal cartilage", "rib cartilages", "rib cartilage"],
    "bone",
    {
        "ct": (
            "The costal cartilages are bars of hyaline cartilage that connect the front ends of the ribs to the sternum or to each other, making the chest wall flexible.",
            "They are short curved bars continuing each rib forward; the lower ones angle upward to form the costal margin.",
            "On CT costal cartilage is soft-tissue density, less bright than bone, often with bright irregular calcifications in older people.",
        ),
    },
)

# -- total_mr-only labels ------------------------------------------------------------------
for side in ("left", "right"):
    if side == "left":
        p = ("The left lung is the air-filled breathing organ in the left chest, with upper and lower lobes and a smaller "
             "volume than the right to make room for the heart.")
        s = ("It is a tall half-cone with a concave base on the diaphragm and a cardiac notch; on axial slices it is a "
             "crescent beside the heart.")
    else:
        p = ("The right lung is the air-filled breathing organ in the right chest, divided into upper, middle and lower "
             "lobes and slightly larger than the left.")
        s = ("It is a broad half-cone resting on the dome of the diaphragm above the liver, filling the right chest as a "
             "crescent on axial slices.")
    ts(
        f"lung_{side}",
        [f"{side} lung field", f"lung on {side}", f"{side} lungs", f"{side} pulmonary parenchyma", f"{side} hemithorax lung"],
        "organ",
        {
            "ct": (p, s, f"On CT the {side} lung is very dark air-filled tissue (around -850 HU) crossed by bright branching vessels, outlined by the brighter chest wall."),
            "mr": (p, s, f"On MRI the {side} lung has very low signal and looks almost black because of its air, against brighter chest-wall and mediastinal tissue."),
        },
        ct=False,
        mr=True,
        extra_sources=["ref_miss"],
    )
ts(
    "vertebrae",
    ["vertebra", "spine", "vertebral column", "spinal column", "vertebral bodies", "backbone"],
    "bone",
    {
        "ct": (
            "The vertebrae are the stacked bones of the spinal column that support the body and protect the spinal cord in the vertebral canal.",
            "Each vertebra has a cylindrical body in front and a ring-shaped arch behind with spinous and transverse processes, forming a curved column.",
            "On CT the vertebrae are bright bone with a dense cortex around grey cancellous bodies, stacked with darker disc spaces between them.",
        ),
        "mr": (
            "The vertebrae are the bony segments of the spine, carrying body weight and enclosing the spinal cord and nerve roots.",
            "They form a column of block-like bodies separated by discs, each with a posterior arch around the spinal canal.",
            "On T1 MRI vertebral bodies are bright from fatty marrow with dark cortical edges; on T2 they are intermediate, between brighter discs.",
        ),
    },
    ct=False,
    mr=True,
)
ts(
    "intervertebral_discs",
    ["intervertebral disc", "intervertebral disk", "intervertebral disks", "spinal discs", "spinal disc",
     "discs", "disc", "disks", "disk"],
    "structure",
    {
        "ct": (
            "The intervertebral discs are fibrocartilage cushions between adjacent vertebral bodies that absorb load and allow the spine to bend.",
            "Each disc is a flat, slightly wedge-shaped pad filling the space between two vertebral bodies, with an outer fibrous ring and a soft core.",
            "On CT the discs are soft-tissue density bands between bright vertebral bodies, sometimes containing calcification or dark gas when degenerated.",
        ),
        "mr": (
            "The intervertebral discs are the shock absorbers of the spine, joining the vertebral bodies while letting the spine move.",
            "They are thin disc-shaped pads with a jelly-like nucleus pulposus inside a fibrous annulus, thicker in the lumbar than in the thoracic spine.",
            "On T2 MRI healthy discs have a bright central nucleus and a darker outer ring; degenerated discs lose this brightness and look dark.",
        ),
    },
    ct=False,
    mr=True,
)


def build() -> dict:
    return {
        "version": VERSION,
        "source": SOURCE,
        "schema": {
            "entries": "list of {name, synonyms, category, modalities, descriptions, sources}",
            "descriptions": "modality -> {profile, shape, appearance}; one sentence each",
            "modalities": ["ct", "mr", "ultrasound", "endoscopy"],
        },
        "ref_miss_entities": [
            "left atrium", "right ventricle", "left ventricle", "myocardium", "left lung", "right lung", "spleen",
            "pancreas", "aorta", "left kidney", "right kidney", "liver", "stomach", "gallbladder", "prostate",
            "brain tumor", "breast mass", "liver tumor", "kidney tumor", "polyp",
        ],
        "entries": ENTRIES,
    }


def validate(lib: dict) -> list[str]:
    problems = []
    seen = {}
    for e in lib["entries"]:
        for mod, d in e["descriptions"].items():
            texts = [d[k] for k in ("profile", "shape", "appearance")]
            if len(set(texts)) != 3:
                problems.append(f"{e['name']}/{mod}: descriptions not distinct")
            for k, t in d.items():
                if not t.strip() or len(t.split()) > 30:
                    problems.append(f"{e['name']}/{mod}/{k}: {len(t.split())} words")
        for key in [e["name"]] + e["synonyms"]:
            k = key.lower()
            if k in seen and seen[k] != e["name"]:
                problems.append(f"synonym {key!r} used by {seen[k]!r} and {e['name']!r}")
            seen[k] = e["name"]
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="validate and compare with the written file only")
    ap.add_argument("--output", type=Path, default=OUT)
    args = ap.parse_args(argv)
    lib = build()
    problems = validate(lib)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    text = json.dumps(lib, indent=1, ensure_ascii=False) + "\n"
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale; run tools/build_prompt_library.py", file=sys.stderr)
            return 1
        print(f"ok: {len(lib['entries'])} entries")
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({len(lib['entries'])} entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
