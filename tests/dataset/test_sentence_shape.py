"""The seed-shape rules on the kinds of wiki1m lines they are for, and on sentences they must let through."""

import pytest

from datagen.dataset.sentence_shape import SEED_SHAPE_REASONS, seed_shape_problem


@pytest.mark.parametrize("line", [
    "Broadacre, Ohio",
    "List of Eagle Award nominees and winners",
    "Athletics at the 1987 Summer Universiade – Men's 100 metres",
    "2018 Swedish general election in Norrbotten County",
    "Wind: +0.5 m/s",
    "A lifetime achievement award.",
    "Naval War College in 2001.",
    "Additional personnel",
    "<section begin=SF1 /><section end=SF1 />",
    "Palmere may refer to:",
    "Luss or LUSS may also refer to:",
    "Lou\u010dn\u00e1 may refer to several places in the Czech Republic:",
])
def test_titles_and_headings_are_refused(line):
    assert seed_shape_problem(line) == "seed_heading"


@pytest.mark.parametrize("line", [
    "in the second round.",
    "refers to the river and lake of the same name.",
    "for a march, but the police only permitted a static rally.",
])
def test_the_rest_of_a_cut_sentence_is_refused(line):
    assert seed_shape_problem(line) == "seed_fragment"


@pytest.mark.parametrize("line", [
    "It is found on the seabed at depths down to about and attached to large demersal fish.",
    "Talbot Lake has a length of , a width of and an altitude of .",
    "It is located about northeast of Bloomingdale at the intersection of Ohio State Route 152.",
])
def test_sentences_whose_numbers_were_dropped_are_refused(line):
    assert seed_shape_problem(line) == "seed_value_gap"


@pytest.mark.parametrize("line", [
    "At , Angola is the world's twenty-third largest country.",
    ", the country has only two rail links to its neighbours.",
    "Chevron produces and receives , 27% of the oil.",
    "An aardvark's weight is typically between .",
    "The film was directed by .",
])
def test_sentences_with_a_dropped_span_are_refused(line):
    assert seed_shape_problem(line) == "seed_text_gap"


@pytest.mark.parametrize("line", [
    "A little girl is feeding ducks by the pond.",
    "Professor Edson died in Madison, Wisconsin, in 1988.",
    "On October 23, 2014, the Supreme Court upheld the verdict",  # no full stop, but a sure verb
    "Edinburgh District beat Glasgow District in the Inter-City match",
    "These 12 species belong to the genus \"Taeniopoda\":",
    "They include the \"Single Top 100\" and the \"Album Top 100\" chart.",
    "The Desande Roadster originally used the chassis of the Ford LTD II.",
    "The company produces tractors in three countries.",
    "de Chazon was a poet, known amongst the Précieuses as \"Belarmis\".",  # a name particle, not a fragment
    "iPhone sales rose sharply in 2010.",
    "Irvine was in 1978 among the signers of the \"Declaration of Internationalization\".",  # "of In" is a name
    "San Javier Island () is an island in the fjords of southern Chile.",  # a dropped native name, still a sentence
    "Albert Einstein (; ; 14 March 1879 – 18 April 1955) was a German-born theoretical physicist.",
    "His epithet Abaeus (, Apollon Abaios), was known across Phocis.",
    "Minsky wrote that we will maintain, with Turing . . . that any such procedure can be realized.",
    "The list is: apples, pears and plums.",
    "Chris Cutler described the book as a \"cornucopia of invaluable information\".",
    "",
])
def test_sentences_pass(line):
    assert seed_shape_problem(line) is None


def test_every_code_is_a_seed_reason():
    from datagen.generation.rows import SEED_REASONS

    assert set(SEED_SHAPE_REASONS) <= SEED_REASONS and all(code.startswith("seed_") for code in SEED_SHAPE_REASONS)
