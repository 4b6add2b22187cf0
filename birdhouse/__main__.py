from birdhouse.cli import main

main()
