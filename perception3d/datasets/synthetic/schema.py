"""Fixed nuScenes v1.0 vocabulary tables: 23 categories, 8 attributes, 4 visibility levels.

Names and visibility levels are the real ones; descriptions are short paraphrases of the real
ones. Tokens of these rows are md5 hashes of the names (stable across seeds).
"""
from __future__ import annotations

import hashlib

CATEGORIES = {
    "animal": "All animals, e.g. cats, rats, dogs, deer, birds.",
    "human.pedestrian.adult": "Adult subcategory.",
    "human.pedestrian.child": "Child subcategory.",
    "human.pedestrian.construction_worker": "Construction worker.",
    "human.pedestrian.personal_mobility": "A small electric or self-propelled vehicle, e.g. skateboard, segway.",
    "human.pedestrian.police_officer": "Police officer.",
    "human.pedestrian.stroller": "Strollers.",
    "human.pedestrian.wheelchair": "Wheelchairs.",
    "movable_object.barrier": "Temporary road barrier placed in the scene in order to redirect traffic.",
    "movable_object.debris": "Movable object that is left on the driveable surface.",
    "movable_object.pushable_pullable": "Objects that a pedestrian may push or pull, e.g. dolleys, wheel barrows.",
    "movable_object.trafficcone": "All types of traffic cone.",
    "static_object.bicycle_rack": "Area or device intended to park or secure the bicycles in a row.",
    "vehicle.bicycle": "Human or electric powered 2-wheeled vehicle designed to travel at lower speeds.",
    "vehicle.bus.bendy": "Bendy bus subcategory.",
    "vehicle.bus.rigid": "Rigid bus subcategory.",
    "vehicle.car": "Vehicle designed primarily for personal use, e.g. sedans, hatch-backs, wagons, vans.",
    "vehicle.construction": "Vehicles primarily designed for construction. Typically very slow moving or stationary.",
    "vehicle.emergency.ambulance": "All types of ambulances.",
    "vehicle.emergency.police": "All types of police vehicles.",
    "vehicle.motorcycle": "Gasoline or electric powered 2-wheeled vehicle designed to move rapidly.",
    "vehicle.trailer": "Any vehicle trailer, both for trucks, cars and bikes.",
    "vehicle.truck": "Vehicles primarily designed to haul cargo including pick-ups, lorrys, trucks and semi-tractors.",
}

ATTRIBUTES = {
    "vehicle.moving": "Vehicle is moving.",
    "vehicle.stopped": "Vehicle, with a driver/rider in/on it, is currently stationary but has an intent to move.",
    "vehicle.parked": "Vehicle is stationary (usually for longer duration) with no immediate intent to move.",
    "cycle.with_rider": "There is a rider on the bicycle or motorcycle.",
    "cycle.without_rider": "There is NO rider on the bicycle or motorcycle.",
    "pedestrian.sitting_lying_down": "The human is sitting or lying down.",
    "pedestrian.standing": "The human is standing.",
    "pedestrian.moving": "The human is moving.",
}

VISIBILITY = [
    ("1", "v0-40", "visibility of whole object is between 0 and 40%"),
    ("2", "v40-60", "visibility of whole object is between 40 and 60%"),
    ("3", "v60-80", "visibility of whole object is between 60 and 80%"),
    ("4", "v80-100", "visibility of whole object is between 80 and 100%"),
]


def name_token(kind: str, name: str) -> str:
    """32-char lowercase hex token for a vocabulary row (stable, seed independent)."""
    return hashlib.md5(f"perception3d-synthetic|{kind}|{name}".encode()).hexdigest()


def visibility_token(fraction: float) -> str:
    """nuScenes visibility token ("1".."4") of a visible fraction in [0, 1]."""
    return "1" if fraction <= 0.4 else "2" if fraction <= 0.6 else "3" if fraction <= 0.8 else "4"
