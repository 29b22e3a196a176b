import pytest
from pydantic import ValidationError

from datagen.config import ValidationConfig
from datagen.tasks.checks import (
    added_details, details, dropped_details, dropped_hedges, invents_birth, looks_like_fragment, only_deletes,
    past_made_present, reworded_words, says_less, similarity,
)
from datagen.tasks.nli import NLITriple
from datagen.tasks.sts import STSTuple

ANCHOR = "A black dog is chasing a frisbee across a sunny park."
GOOD_STS = {
    "anchor": ANCHOR,
    "positive": "Across a sunny park, a black dog runs after a frisbee.",
    "intermediate": "A dog is chasing a frisbee.",
    "negative": "A cat is sleeping on a cold windowsill.",
}


def reason_of(model, data, settings=None):
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data, context=settings or ValidationConfig())
    error = caught.value.errors()[0]
    return error["type"], error["loc"][0] if error["loc"] else (error.get("ctx") or {}).get("field")


def test_good_sts_tuple_is_accepted():
    assert STSTuple.model_validate(GOOD_STS, context=ValidationConfig()).intermediate == "A dog is chasing a frisbee."


@pytest.mark.parametrize(
    "field, value, reason",
    [
        ("positive", "", "empty"),
        ("positive", "Dog.", "too_short"),
        ("positive", "word " * 200, "too_long"),
        ("positive", "Sure, here is a paraphrase of the sentence.", "meta_text"),
        ("positive", "Hypothesis: a dog runs after a frisbee.", "meta_text"),
        ("positive", "1. A dog runs after a frisbee in a park.", "meta_text"),
        ("negative", "I'm sorry, but I cannot help with that request.", "refusal"),
        ("negative", "12345 67890 !!!", "no_words"),
        ("positive", ANCHOR.upper(), "copies_anchor"),
        ("negative", GOOD_STS["positive"], "copies_other_output"),
        ("intermediate", "A black dog is happily chasing a red frisbee across a big sunny park.", "intermediate_not_shorter"),
    ],
)
def test_bad_sts_outputs_are_rejected_with_reason_and_field(field, value, reason):
    code, where = reason_of(STSTuple, {**GOOD_STS, field: value})
    assert code == reason
    assert where == field


def test_thresholds_come_from_config():
    lenient = ValidationConfig(require_shorter_intermediate=False, min_chars=2, max_similarity_between_outputs=1.0)
    data = {**GOOD_STS, "intermediate": GOOD_STS["positive"] + " Really.", "negative": "No."}
    assert STSTuple.model_validate(data, context=lenient).negative == "No."


def test_not_only_contradiction_is_kept_but_near_copy_is_not():
    # Inserting "not" is a real (if easy) contradiction; a verbatim copy is not.
    ok = {"anchor": ANCHOR, "entailment": "A dog is outside.", "contradiction": "A black dog is not chasing a frisbee."}
    assert NLITriple.model_validate(ok, context=ValidationConfig())
    copy = {**ok, "contradiction": ANCHOR.rstrip(".")}
    assert reason_of(NLITriple, copy)[0] == "copies_anchor"


def test_one_word_hard_negative_is_kept_but_one_word_positive_is_a_copy():
    anchor = "The 1851 census counted 35,302 males among the 63,700 people of South Australia."
    flipped = anchor.replace("males", "females")
    data = {"anchor": anchor, "positive": anchor.replace("census counted", "census then counted"),
            "intermediate": "The 1851 census counted the people.", "negative": flipped}
    # a positive that only adds filler words is still a copy of the anchor ...
    assert reason_of(STSTuple, data)[0] == "copies_anchor"
    # ... while a negative with one word flipped is a hard negative, not a copy
    data["positive"] = "South Australia had 63,700 inhabitants in 1851, 35,302 of them male."
    assert STSTuple.model_validate(data, context=ValidationConfig()).negative == flipped


def test_similarity_ignores_case_and_punctuation():
    assert similarity("A dog, running!", "a dog running") == 1.0
    assert similarity("A dog runs.", "The stock market fell.") < 0.5


@pytest.mark.parametrize(
    "text, script",
    [("A dog runs.", "LATIN"), ("123 - 456!", "NONE"), ("", "NONE"), ("Café au lait", "LATIN"), ("一只狗在跑 run", "CJK")],
)
def test_script_ascii_fast_path_agrees_with_unicode_names(text, script):
    from datagen.tasks.checks import _script

    assert _script(text) == script


def test_edit_checks_hold_outputs_to_the_strategy_that_made_them():
    from datagen.tasks.checks import added_content_words, is_one_substitution

    anchor = "A young woman in a green dress is reading a book under an old oak tree."
    assert added_content_words(anchor, "A woman is reading a book under a tree.") == set()
    assert added_content_words(anchor, "A woman is reading a novel.") == {"novel"}
    assert is_one_substitution(anchor, "A young woman in a green dress is sleeping under an old oak tree.")
    assert not is_one_substitution(anchor, anchor)  # nothing replaced
    assert not is_one_substitution(anchor, "A young man in a red dress is reading a book under an old oak tree.")
    # a negation excludes the anchor as surely as a swapped detail; a deletion beside the one change is allowed
    assert is_one_substitution(anchor, "A young woman in a green dress is not reading a book under an old oak tree.")
    assert is_one_substitution(anchor, "A woman is sleeping under an old oak tree.")
    assert not is_one_substitution(anchor, "A woman is reading a book.")  # deletions only: still compatible
    assert not is_one_substitution(anchor, "A young woman in a green dress is reading a nice book under an old oak tree.")
    # a "replacement" that brings nothing new is a deletion in disguise
    assert not is_one_substitution("Top drivers with most wins and most starts.", "Top drivers with the most starts.")
    assert is_one_substitution("He reported the case.", "He did not report the case.")
    settings = ValidationConfig(deletion_outputs=("entailment",), substitution_outputs=("contradiction",))
    row = {"anchor": anchor, "entailment": "A woman is reading a book.",
           "contradiction": "A young woman in a green dress is sleeping under an old oak tree."}
    assert NLITriple.model_validate(row, context=settings)
    assert reason_of(NLITriple, {**row, "entailment": "A woman is reading a novel."}, settings) == ("adds_content", "entailment")
    assert reason_of(NLITriple, {**row, "contradiction": "Nobody is reading anything here today."}, settings) == (
        "not_one_substitution", "contradiction")


def test_details_are_numbers_names_and_negations_not_sentence_starts():
    assert details("On 3 May 1990 the Elbe bridge was not yet open to Anna's trains.") == {
        "3", "may", "1990", "elbe", "not", "anna"}
    assert details("Two boys saw the 20th race.") == {"two", "20"}  # "Two" starts the sentence but is a number
    assert details("It rained. Later I left.") == set()  # "Later" starts a sentence, "I" is no name
    assert details("He then also directed films.") == {"then", "also"}  # qualifiers change what is claimed


def test_a_paraphrase_must_keep_every_detail_and_an_entailment_add_none():
    anchor = "Henry Walker (1811–1886) was a Michigan politician who served in the Senate from 1859."
    assert dropped_details(anchor, "Henry Walker, who lived from 1811 to 1886 and sat in the Senate from 1859, "
                                   "was a politician in Michigan.") == set()
    assert dropped_details(anchor, "Henry Walker was a politician in Michigan.") == {"1811", "1886", "senate", "1859"}
    # an ordinal is the same number; a demonym is the same place
    assert dropped_details("She arrived on 15 November.", "She arrived on November 15th.") == set()
    assert added_details("The film led the Chinese box office.", "The film did well in China.") == set()
    assert added_details(anchor, "Walker was a Democrat.") == {"democrat"}
    assert added_details(anchor, "Walker did not serve in the Senate.") == {"not"}
    assert added_details(anchor, "Walker didn't serve in the Senate.") == {"not"}
    assert dropped_details("She did not vote.", "She didn't vote.") == set()
    assert added_details(anchor, "Walker was a politician for 27 years.") == {"27"}
    assert added_details("Walker served 6 terms.", "Walker served 16 terms.") == {"16"}  # numbers match whole
    assert added_details("It was the seventeenth season.", "It was the seventh season.") == {"seventh"}


def test_detail_checks_reject_with_their_reasons_only_where_configured():
    anchor = "Maria Lindqvist (born 4 May 1988) competed at the 2014 Winter Olympics."
    row = {"anchor": anchor, "positive": "Born on 4 May 1988, Maria Lindqvist took part in the 2014 Winter Olympics.",
           "intermediate": "Maria Lindqvist competed at the Winter Olympics.",
           "negative": "Maria Lindqvist missed the 2014 Winter Olympics."}
    settings = ValidationConfig(detail_keeping_outputs=("positive",), no_new_detail_outputs=("positive", "intermediate"))
    assert STSTuple.model_validate(row, context=settings)
    assert reason_of(STSTuple, {**row, "positive": "Maria Lindqvist took part in the 2014 Winter Games as a skier."},
                     settings) == ("drops_detail", "positive")
    assert reason_of(STSTuple, {**row, "intermediate": "Maria Lindqvist, a Swede, went to the Olympics."},
                     settings) == ("adds_detail", "intermediate")
    # off by default: the same rows pass without the settings
    assert STSTuple.model_validate({**row, "intermediate": "Maria Lindqvist, a Swede, went to the Olympics."},
                                   context=ValidationConfig())


def test_a_shortened_anchor_is_no_contradiction_or_negative():
    anchor = "The former mayor, Anna Berg, won two gold and two silver medals at the 1998 games."
    assert only_deletes(anchor, "Anna Berg won two gold medals at the 1998 games.")
    assert not only_deletes(anchor, "The mayor won medals.")  # "former" left out, "mayor" kept: turned around
    assert not only_deletes(anchor, "Anna Berg did not win medals at the 1998 games.")  # negated
    assert not only_deletes(anchor, "Anna Berg won two bronze medals at the 1998 games.")  # a swapped detail
    assert not only_deletes("She did not vote.", "She voted.")  # a negation removed reverses it
    assert not only_deletes("Jacob made it despite David's fear.", "Jacob made it despite Jacob's fear.")  # order
    row = {"anchor": anchor, "positive": "At the 1998 games the former mayor, Anna Berg, won two gold and two silver medals.",
           "intermediate": "Anna Berg won medals at the 1998 games.",
           "negative": "Anna Berg won two gold medals at the 1998 games."}
    settings = ValidationConfig(not_deletion_outputs=("negative",))
    assert reason_of(STSTuple, row, settings) == ("only_deletes", "negative")
    assert STSTuple.model_validate({**row, "negative": "Anna Berg won no medals at the 1998 games."}, context=settings)
    assert STSTuple.model_validate(row, context=ValidationConfig())  # off unless configured


@pytest.mark.parametrize("anchor, output, dropped", [
    ("The anomaly may occur in other diseases.", "The anomaly occurs in other diseases.", {"may"}),
    ("The anomaly may occur in other diseases.", "The anomaly can occur in other diseases.", set()),  # near-synonym
    ("Juveniles are usually brown.", "Juveniles are brown.", {"usually"}),
    ("Juveniles are usually brown.", "Juveniles are often brown.", set()),
    ("Usually, juveniles are brown.", "Juveniles are brown.", {"usually"}),  # at the start of the sentence too
    ("He was reportedly in debt.", "He was in debt.", {"reportedly"}),
    ("Males tend to be larger.", "Males are larger.", {"tend"}),
    ("The lake holds about nine islands.", "The lake holds nine islands.", {"about nine"}),
    ("The lake holds about nine islands.", "The lake holds roughly nine islands.", set()),
    ("The lake holds about nine islands.", "The lake holds islands.", set()),  # the number went with its hedge
    ("It has more than 30 species.", "It has 30 species.", {"more than 30"}),
    # an approximation kept on another side of the number claims more than the anchor
    ("Around 20 people came.", "At least 20 people came.", {"around 20"}),
    ("About 30 people gathered.", "Over 30 people gathered.", {"about 30"}),
    ("It has more than 30 species.", "It has at least 30 species.", set()),  # the same side
    ("Around 8,000 people attended.", "At least 8,000 people attended.", {"around 8,000"}),  # one number
    ("Around 8,000 people attended.", "About 8,000 people attended.", set()),
    ("Nearly 40 boats sank.", "Fewer than 40 boats sank.", set()),
    # another number's approximation does not cover this one
    ("At about 1 pm, about 100 citizens gathered.", "100 citizens gathered at around 1 pm.", {"about 100"}),
    ("Nearly a hundred people gathered.", "A hundred people gathered.", {"nearly a hundred"}),
    ("By 1955 illiteracy was virtually eliminated.", "Illiteracy was eliminated by 1955.", {"virtually"}),
    ("The fire almost destroyed the mill.", "The fire nearly destroyed the mill.", set()),  # same class
    ("On May 17, 2011, a video appeared.", "A video appeared.", set()),  # the month, not a hedge
    ("He can swim.", "He swims.", set()),  # an ability, not a hedge
    # a report or a plan stated as done
    ("Police said the driver was drunk.", "The driver was drunk.", {"said"}),
    ("Police said the driver was drunk.", "According to police, the driver was drunk.", set()),  # same class
    ("The hotel was described as a ruin.", "The hotel was a ruin.", {"described"}),
    ("The bridge was scheduled to open in May.", "The bridge opened in May.", {"scheduled"}),
    ("She planned to resign in 2004.", "She intended to resign in 2004.", set()),
    ("Tests in the United States began in 1950.", "Tests in the US began in 1950.", set()),  # a name, not a report
    ("He would later become mayor.", "He later became mayor.", set()),  # history, not a plan
    ("The board recommended that the town rebuild the pier.", "The town rebuilt the pier.", {"recommended"}),
    ("She decided to leave the band in 1999.", "She left the band in 1999.", {"decided"}),
    ("We think the market will grow by 5 percent.", "The market will grow by 5 percent.", {"think"}),
    ("She decided to leave the band in 1999.", "In 1999 she decided to quit the band.", set()),
    ("", "", set()),
])
def test_dropped_hedges_are_hedges_the_output_states_plainly(anchor, output, dropped):
    assert dropped_hedges(anchor, output) == dropped


def test_a_dropped_hedge_is_rejected_only_where_configured():
    row = {"anchor": "The condition may occur after a long illness in older patients.",
           "positive": "After a long illness in older patients the condition may occur.",
           "intermediate": "The condition occurs after a long illness.",
           "negative": "The condition never occurs in older patients."}
    settings = ValidationConfig(hedge_keeping_outputs=("positive", "intermediate"))
    assert reason_of(STSTuple, row, settings) == ("drops_hedge", "intermediate")
    assert STSTuple.model_validate({**row, "intermediate": "The condition may occur after a long illness."}, context=settings)
    assert STSTuple.model_validate(row, context=ValidationConfig())  # off unless configured


@pytest.mark.parametrize("anchor, output, shift", [
    ("The shire offices were in Alstonville.", "The shire offices are in Alstonville.", ("were", "are")),
    ("Woodburn Shire was a local government area.", "Woodburn Shire is a local area.", ("was", "is")),
    ("The council had two members.", "The council will have two members.", ("had", "will")),
    ("The shire offices were in Alstonville.", "The shire offices were located in Alstonville.", None),
    ("The shire offices were in Alstonville.", "Alstonville housed the shire offices.", None),  # no auxiliary
    ("He is an alumnus of the college.", "He was a student at the college.", None),  # present -> past: left alone
    ("It was built in 1900 and is now a museum.", "It is a museum built in 1900.", None),  # the anchor mixes tenses
    ("It was built in 1900.", "It is a building that was built in 1900.", None),  # the output keeps the past
    # simple pasts, read from "-ed" and irregular forms
    ("He competed at the 1952 Summer Olympics.", "He competes in the Summer Olympics.", ("competed", "competes")),
    ("Since 1989 he worked as a teacher in Bad Arolsen.", "He has been teaching in Bad Arolsen since 1989.",
     ("worked", "has")),
    ("In 2003, Williams became the first Commissioner.", "Williams is a Commissioner.", ("became", "is")),
    ("She carried the flag in 1996.", "She carries the flag.", ("carried", "carries")),
    ("The team won the cup twice.", "The team wins the cup.", ("won", "wins")),
    ("As the laureate, he could choose 3 organizations.", "The laureate can choose 3 organizations.",
     ("could", "can")),
    # a present perfect speaks of the past too
    ("He competed at the 1952 and 1956 Olympics.", "He has competed in two Olympics.", None),
    ("The bridge was completed in 1932.", "The bridge has been completed.", None),
    # ... unless "since" says it goes on
    ("She had chaired the board since 2012.", "She has chaired the board since 2012.", ("had", "has")),
    # a past perfect is a past: its participle made present moves the claim to now
    ("She had chaired the board since 2012.", "She chairs the board.", ("chaired", "chairs")),
    ("They had won the cup twice.", "They have won the cup twice.", None),
    # a present perfect of a state is no claim that it holds now
    ("She has been a member of the national team.", "She is a member of the national team.", ("has been", "is")),
    ("The programs have been funded by the state.", "The programs are funded by the state.", ("have been", "are")),
    ("She has been a member of the national team.", "She was a member of the national team.", None),
    ("She has been a member of the national team.", "She has played for the national team.", None),
    ("She has been a member of the team since 2010.", "She is a member of the team.", None),  # "since": she still is
    ("He also won the cup in 1990.", "He wins the cup.", ("won", "wins")),  # "also won" is a simple past
    # participles and adjectives are no simple past
    ("The accelerated track lasts five years.", "The track is five years long.", None),
    ("It was built of stones.", "The building is made of stones.", ("was", "is")),  # "made" after "is"
    ("A Toronto-based company.", "The company is in Toronto.", None),
    ("He competed at the 1952 Olympics.", "He took part in the Olympics.", None),  # both in the past
    # a word before "by" is a participle, whatever its form
    ("The expedition, led by Ruiz, reached the pass.", "The expedition reached the pass.", None),
    ("The novel written by Ada Brennan.", "Ada Brennan's novel is set in Cornwall.", None),
    ("The expedition, led by Ruiz, reached the pass.", "The expedition reaches the pass.", ("reached", "reaches")),
    ("The party, founded by Kovacs in 1990.", "The party is led by Kovacs.", None),
    ("", "", None),
])
def test_a_past_claim_made_present_is_a_changed_tense(anchor, output, shift):
    assert past_made_present(anchor, output) == shift


def test_a_changed_tense_is_rejected_only_where_configured():
    row = {"anchor": "The shire offices were in South Grafton near the river.",
           "positive": "The shire offices were located in South Grafton by the river.",
           "intermediate": "The shire offices are in Grafton.",
           "negative": "The shire offices were never in South Grafton."}
    settings = ValidationConfig(tense_keeping_outputs=("positive", "intermediate"))
    assert reason_of(STSTuple, row, settings) == ("changes_tense", "intermediate")
    assert STSTuple.model_validate({**row, "intermediate": "The shire offices were in Grafton."}, context=settings)
    assert STSTuple.model_validate(row, context=ValidationConfig())  # off unless configured


@pytest.mark.parametrize("anchor, output, invented", [
    ("Lon Noor was a Romanian weightlifter.", "Lon Noor was not born in Romania.", True),
    ("Dignan served as Secretary of State from 1943 to 1946.", "Dignan was born in 1895.", True),
    ("He was arrested that year.", "He was arrested on his 26th birthday.", True),
    ("Lon Noor (born 1921) was a weightlifter.", "Lon Noor was born in 1950.", False),  # the anchor states the birth
    ("Nils Jacobsson (10 February 1929 – 18 July 1982) was a Swedish weightlifter.", "He was born in 1950.", False),
    ("John Benezet (22 Jun 1683, Abbeville - 4 Apr 1751, Germantown) was a refugee.", "He was born in Paris.", False),
    ("Lon Noor (b. 1921) was a weightlifter.", "Lon Noor was born in 1950.", False),
    ("She was born in Cork in 1950.", "She was born in Dublin.", False),
    ("Lon Noor was a Romanian weightlifter.", "Lon Noor was a Bulgarian boxer.", False),  # no birth spoken of
    ("", "", False),
])
def test_a_birth_the_anchor_never_mentions_is_invented(anchor, output, invented):
    assert invents_birth(anchor, output) is invented


@pytest.mark.parametrize("option, row, reason, mended", [
    ("tense_keeping_outputs",
     {"anchor": "He competed at the 1952 Summer Olympics and the 1956 Summer Olympics.",
      "entailment": "He competes in the Summer Olympics.", "contradiction": "He never took part in any Olympic Games."},
     ("changes_tense", "entailment"), {"entailment": "He competed in the Summer Olympics."}),
    ("no_unstated_birth_outputs",
     {"anchor": "Lon Noor was a Romanian weightlifter who competed at the 1952 Summer Olympics.",
      "entailment": "Lon Noor was a weightlifter.", "contradiction": "Lon Noor was not born in Romania."},
     ("invents_birth", "contradiction"), {"contradiction": "Lon Noor never competed at the Olympics."}),
])
def test_an_nli_output_a_check_flags_is_rejected_only_where_configured(option, row, reason, mended):
    field = reason[1]
    settings = ValidationConfig(**{option: (field,)})
    assert reason_of(NLITriple, row, settings) == reason
    assert NLITriple.model_validate({**row, **mended}, context=settings)
    assert NLITriple.model_validate(row, context=ValidationConfig())  # off unless configured


@pytest.mark.parametrize("anchor, output, added", [
    ("It was released on a small label in 2018.", "The album was released in 2018.", {"album"}),
    ("It was released on her 1982 studio album.", "The album was released in 1982.", set()),  # the anchor's noun
    ("He competed in the men's event in 1952.", "The man competed in 1952.", set()),  # only "It" is read
    ("The album was released in 2018.", "The record was released in 2018.", set()),  # no opening "It"
])
def test_a_noun_given_to_the_anchors_opening_it_is_an_added_detail(anchor, output, added):
    assert added_details(anchor, output) == added


def test_a_positive_keeps_its_qualifiers():
    assert dropped_details("He has also directed some films.", "He has directed some films.") == {"also"}
    assert dropped_details("Some activists welcomed the law.", "Activists welcomed the law.") == {"some"}
    assert dropped_details("He appeared on many podcasts.", "He was a guest on many podcasts.") == set()
    assert dropped_details("Some 20 people came.", "About 20 people came.") == set()  # an approximation
    assert added_details("The plan raised concerns.", "The plan caused some concern.") == set()  # only when dropped
    assert dropped_details("Then he became a scholar.", "He then became a scholar.") == set()
    assert added_details("He won the race.", "He only just won the race.") == {"only", "just"}
    assert added_details("The case went to the justice.", "Just the case went to the justice.") == {"just"}  # whole


@pytest.mark.parametrize("text, fragment", [
    ("Born in Newport and educated at Forest Gate School.", True),
    ("Earning a gold medal as the top student in the class.", True),
    ("Directed some of the popular Marathi films.", True),
    ("Born in 1925 in Peru, Tobalina moved to Brazil.", False),  # a clause follows the comma
    ("Spring is the wettest season here.", False),
    ("Nothing happened that night.", False),
    ("Published in 1990, the book sold well.", False),
    ("Red Square was full of people.", False),
])
def test_fragments_are_participle_phrases_without_a_clause(text, fragment):
    assert looks_like_fragment(text) is fragment


def test_a_fragment_is_rejected_unless_the_anchor_is_one():
    row = {"anchor": "He has also directed some popular Marathi films.", "entailment": "Directed some popular films.",
           "contradiction": "He has never directed a film."}
    assert reason_of(NLITriple, row) == ("fragment", "entailment")
    titled = {**row, "anchor": "Directed by Ravi Jadhav and produced in Pune."}
    assert NLITriple.model_validate({**titled, "contradiction": "Directed by someone else entirely in Mumbai."},
                                    context=ValidationConfig())
    assert NLITriple.model_validate(row, context=ValidationConfig(reject_fragments=False))


@pytest.mark.parametrize("anchor, output, missing, new", [
    ("The museum reopened in 2011 after a long renovation.", "After a long renovation, the museum reopened in 2011.",
     [], []),  # word order only
    ("The ferry started service in 1920.", "The ferry began service in 1920.", ["started"], ["began"]),
    ("She studied in Paris and Berlin.", "She studies in Paris and Berlin.", [], []),  # a stem is no rewording
    ("Two boys are running to the games.", "Two boys run to the game.", [], []),
    ("He used a boat.", "He uses boats.", [], []),
    ("He is best known for the 1994 novel.", "He is known for the 1994 novel.", ["best"], []),
    ("Her works were played at festivals, e.g.", "Her works were played at festivals.", [], []),  # letters ignored
])
def test_reworded_words_are_the_content_words_one_side_lacks(anchor, output, missing, new):
    assert reworded_words(anchor, output) == (missing, new)


@pytest.mark.parametrize("anchor, output, less", [
    ("He is best known for the 1994 novel.", "He is known for the 1994 novel.", True),
    ("The radio operator sent a distress call.", "The operator sent a distress call.", True),
    ("The house was built by two brothers and has a porch.", "The house was built by two brothers, with a porch.",
     False),  # only function words differ
    ("The ferry started service in 1920.", "The ferry began service in 1920.", False),  # a word replaced
])
def test_an_output_that_only_leaves_content_words_out_says_less(anchor, output, less):
    assert says_less(anchor, output) is less


def _sts_row(positive: str, intermediate: str = "The ferry ran across the bay.") -> dict[str, str]:
    return {"anchor": "The old ferry ran across the bay every hour until the bridge opened in 1936.",
            "positive": positive, "intermediate": intermediate,
            "negative": "The ferry never crossed the bay, because a bridge stood there from the start."}


def test_a_close_paraphrase_rewords_at_most_the_budget():
    settings = ValidationConfig(close_paraphrase_outputs=("positive",), max_reworded_words=4)
    close = _sts_row("Until the bridge opened in 1936, the old ferry crossed the bay every hour.")
    assert STSTuple.model_validate(close, context=settings)  # "ran" -> "crossed": 2 of 4
    loose = _sts_row("Each hour the aged boat sailed over the water until 1936, when the bridge was completed.")
    assert reason_of(STSTuple, loose, settings) == ("rewords_too_much", "positive")
    assert STSTuple.model_validate(loose, context=ValidationConfig(close_paraphrase_outputs=("positive",),
                                                                   max_reworded_words=20))
    shorter = _sts_row("The ferry ran across the bay until the bridge opened in 1936.")
    assert reason_of(STSTuple, shorter, settings) == ("says_less", "positive")  # "old", "every hour" left out
    assert STSTuple.model_validate(loose, context=ValidationConfig())  # off unless configured


def test_an_intermediate_must_leave_a_content_word_out():
    settings = ValidationConfig(fewer_details_outputs=("intermediate",))
    positive = "Until the bridge opened in 1936, the old ferry made its crossing of the bay once every hour."
    everything = _sts_row(positive, "Until 1936 the old ferry ran across the bay every hour, till the bridge opened.")
    assert reason_of(STSTuple, everything, settings) == ("leaves_nothing_out", "intermediate")
    assert STSTuple.model_validate(_sts_row(positive), context=settings)
    # Leaving words out while bringing as many in is a paraphrase too: "old", "ran", "every", "hour" out; "big",
    # "vessel", "sailed", "regularly" in.
    reworded = _sts_row(positive, "The big ferry vessel sailed across the bay regularly until the bridge opened in 1936.")
    assert reason_of(STSTuple, reworded, settings) == ("leaves_nothing_out", "intermediate")
    fewer = _sts_row(positive, "The ferry sailed across the bay until the bridge opened in 1936.")  # 4 out, 1 in
    assert STSTuple.model_validate(fewer, context=settings)
    assert STSTuple.model_validate(everything, context=ValidationConfig())  # off unless configured
